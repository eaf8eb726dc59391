"""Async workflows in the engine: `Engine.astart` / `Engine.asend`, async actions in the worker.

There is one interpreter and one unit of work, both synchronous generators and calls; what is
async is user code (an action, a handler, a setup, a teardown). So the engine does not run a
second, awaiting copy of the unit: the unit runs in a thread of the engine's pool (the stores
are synchronous, and an event loop must never wait on one), and when the interpreter calls an
``async`` function the thread hands the coroutine to an event loop and waits for its result:

- under `Engine.astart` / `Engine.asend`, the caller's own loop, so async actions share the
  caller's clients and pools (an ``httpx.AsyncClient`` made at start-up, say) and the loop
  stays free while the store is written: it only ever runs the coroutines themselves;
- under the sync methods and the worker, a loop the engine keeps on a thread of its own,
  started the first time an async call needs it.

The coroutine runs in a copy of the unit thread's context, so `current_step()` and the clock
inside an async action are the unit's.

Example:
    >>> import asyncio, stmtflow as sf
    >>> class Fetch(sf.WorkflowState):
    ...     got: str = ""
    ...     def definition(self):
    ...         return sf.S(sf.Step("fetch", self.fetch))
    ...     async def fetch(self):
    ...         await asyncio.sleep(0)
    ...         self.got = sf.current_step().step
    >>> engine = sf.Engine("memory://", workflows=[Fetch])
    >>> asyncio.run(engine.astart(Fetch, id="f-1")).data.got
    'fetch'
    >>> engine.close()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from stmtflow.errors import ExecutionError

if TYPE_CHECKING:
    from stmtflow.dsl._workflow import WorkflowState
    from stmtflow.runtime._reads import Instance

__all__ = ["AsyncCalls", "AsyncSupport"]

T = TypeVar("T")

POOL_THREADS = 16
"""Units the async entry points run at once (a PostgreSQL store pools 10 connections)."""

_caller_loop: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "stmtflow_caller_loop", default=None
)
"""The loop of the `astart`/`asend` caller whose unit this thread runs."""


class AsyncSupport:
    """An engine's thread pool for async callers and its own event loop for async user code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the blocking ``fn`` in the pool; async user code it meets runs on this loop."""
        loop = asyncio.get_running_loop()

        def in_thread() -> T:
            token = _caller_loop.set(loop)
            try:
                return fn(*args, **kwargs)
            finally:
                _caller_loop.reset(token)

        context = contextvars.copy_context()
        return await loop.run_in_executor(self._executor(), context.run, in_thread)

    def awaiter(self, awaitable: Awaitable[Any]) -> Any:
        """Wait, from a unit's thread, for ``awaitable`` on the right loop; its result."""
        loop = _caller_loop.get() or self._own_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            # Waiting here would block the very loop that must run the coroutine.
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise ExecutionError(
                "an async action was met by a sync engine call made on the event loop's own "
                "thread; await engine.astart / engine.asend instead"
            )
        context = contextvars.copy_context()
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        async def wrapped() -> Any:
            return await awaitable

        def start() -> None:
            task = loop.create_task(wrapped(), context=context)
            task.add_done_callback(functools.partial(_copy_outcome, done))

        loop.call_soon_threadsafe(start)
        return done.result()

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    POOL_THREADS, thread_name_prefix="stmtflow-unit"
                )
            return self._pool

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="stmtflow-async", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def close(self) -> None:
        """Stop the pool and the loop thread (idempotent)."""
        with self._lock:
            pool, loop, thread = self._pool, self._loop, self._thread
            self._pool = self._loop = self._thread = None
        if pool is not None:
            pool.shutdown(wait=True)
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


def _copy_outcome(done: concurrent.futures.Future[Any], task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        done.set_exception(ExecutionError("an async action was cancelled"))
    elif (exc := task.exception()) is not None:
        done.set_exception(exc)
    else:
        done.set_result(task.result())


class AsyncCalls:
    """`astart`, `asend`, `acancel`, `athread`: the `Engine`'s entry points for asyncio, a
    mixin (each runs its sync twin as `AsyncSupport.run` says)."""

    _async: AsyncSupport

    if TYPE_CHECKING:
        start: Callable[..., Instance]
        send: Callable[..., Any]
        cancel: Callable[..., Instance]

    async def astart(
        self,
        workflow: str | type[WorkflowState],
        data: WorkflowState | dict[str, Any] | None = None,
        *,
        id: str | None = None,
    ) -> Instance:
        """`start` for asyncio: the unit runs in the engine's thread pool, so the event loop
        never waits on the store; async actions and handlers are awaited on the caller's loop
        (`stmtflow.runtime._async`)."""
        return await self._async.run(self.start, workflow, data, id=id)

    async def asend(
        self,
        id: str,
        event: str,
        input: Any = None,
        *,
        thread_id: str | None = None,
        buffer: bool = False,
        key: str | None = None,
    ) -> Any:
        """`send` for asyncio, as `astart` runs `start`."""
        return await self._async.run(
            self.send, id, event, input, thread_id=thread_id, buffer=buffer, key=key
        )

    async def acancel(self, id: str, *, cascade: bool = True, compensate: bool = False) -> Instance:
        """`cancel` for asyncio (async teardowns and compensations awaited on the caller's loop)."""
        return await self._async.run(self.cancel, id, cascade=cascade, compensate=compensate)

    async def athread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking engine call (a read: `get`, `list`, `pending`, ...) in the engine's
        thread pool, for async callers such as the HTTP service."""
        return await self._async.run(fn, *args, **kwargs)

"""One asyncio event loop on a thread of its own, for a synchronous store over an async client.

The `Store` protocol is synchronous; nats-py is asyncio only. A `LoopThread` owns one event loop
running on one daemon thread, started on first use and stopped by `LoopThread.stop`. Any thread
hands it a coroutine with `LoopThread.run` and blocks until the result, an exception (re-raised
in the caller's thread) or the timeout. Every coroutine runs on the one loop, so the client's
connection and whatever the store keeps beside it are only ever touched from that thread.

A process forked while the loop runs gets a copy without its thread: the first call in the
child starts a loop of its own (the caller's ``reset`` hook drops what belonged to the parent's).

Example:
    >>> import asyncio
    >>> loop = LoopThread("demo")
    >>> async def double(n: int) -> int:
    ...     await asyncio.sleep(0)
    ...     return 2 * n
    >>> loop.run(lambda: double(21), timeout=5, what="doubling")
    42
    >>> loop.stop()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from stmtflow.errors import StmtflowError

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An event loop on a daemon thread named ``name``, started lazily, safe from many threads.

    Args:
        name: the thread's name (shown in stack dumps).
        reset: called (in the calling thread) before a forked child starts its own loop, so the
            owner can drop the connection that belonged to the parent's.
    """

    def __init__(self, name: str, reset: Callable[[], None] | None = None) -> None:
        self._name = name
        self._reset = reset
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's thread is not here
                self._loop, self._thread, self._pid = None, None, os.getpid()
                if self._reset is not None:
                    self._reset()
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name=self._name, daemon=True)
                thread.start()
                started.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, make: Callable[[], Coroutine[Any, Any, T]], *, timeout: float, what: str) -> T:
        """Run the coroutine ``make()`` on the loop; its result, or its exception re-raised.

        Raises:
            StmtflowError: it did not finish within ``timeout`` seconds (it is cancelled), naming
                ``what`` was being done.
        """
        loop = self._running()
        if threading.current_thread() is self._thread:
            raise RuntimeError(f"{what}: called from the store's own event loop thread")
        future = asyncio.run_coroutine_threadsafe(make(), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise StmtflowError(f"{what}: no answer within {timeout:g} s") from None

    def stop(self, cleanup: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Run ``cleanup()`` on the loop (if it runs), then stop the loop and join its thread.

        Stopping a loop that never started, or twice, does nothing.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or self._pid != os.getpid():
                return
            self._loop, self._thread = None, None
        try:
            if cleanup is not None:
                asyncio.run_coroutine_threadsafe(cleanup(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

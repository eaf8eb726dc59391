"""Running handlers in parallel: a thread pool, and steps started ahead of their turn.

The interpreter runs one action at a time, in thread order (DESIGN §3.1), so two DAG steps that
are ready together would run one after the other if each step's action called its handler
itself. Instead, the action of a ready step first *starts* every other ready step's handler in
this pool (its first attempt, with the inputs it will have: its dependencies are done, so they
cannot change), then waits for its own. When the interpreter reaches the other steps, their
handlers are running or done, and their actions only collect the result. Every result still
becomes durable through its own step's checkpoint, so nothing changes for crashes: a handler
whose step had not checkpointed runs again on resume (at least once, as any step).

What is in flight lives in this process only, keyed by the instance id, the run token kept in
the instance's data (so two stores with the same instance id never share a result) and the
step id. A taken entry stays as a marker so that a retry is never started early by another
step; `forget` drops an instance's entries when its DAG ends.

Handlers may be ``async``: each then runs with its own event loop in its pool thread
(``asyncio.run``), so the workflow's actions stay plain and it runs on the sync `Engine` too.
A ``timeout`` counts from the moment the handler was started: an async handler is cancelled,
a sync one is abandoned (its thread runs on, its result is dropped); either way the attempt
fails with `TimeoutError`.

Example:
    >>> take(("doc", "run-1"), "a", lambda inputs: inputs["x"] + 1, {"x": 1}, None)
    2
    >>> forget(("doc", "run-1"))
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

__all__ = ["POOL_SIZE", "forget", "start", "take"]

POOL_SIZE = 64
"""Handlers running at once in one process, across all DAG instances."""

Key = tuple[str, str]
"""(instance id, run token): whose steps an entry belongs to."""


@dataclass(slots=True)
class _Flight:
    future: Future[Any]
    deadline: float | None  # time.monotonic() by which it must be done


_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_flights: dict[Key, dict[str, _Flight | None]] = {}


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="stmtflow-dag")
    return _pool


def _timed_out(step: str, timeout: float | None) -> TimeoutError:
    return TimeoutError(f"step {step!r}: handler did not finish within {timeout:g}s")


def _call(step: str, fn: Callable[..., Any], inputs: dict[str, Any], timeout: float | None) -> Any:
    """Run ``fn(inputs)`` to its end in this (pool) thread; an async one on its own loop."""
    result = fn(inputs)
    if not inspect.isawaitable(result):
        return result

    async def bounded() -> Any:
        try:
            return await asyncio.wait_for(result, timeout)
        except TimeoutError as exc:
            raise _timed_out(step, timeout) from exc

    return asyncio.run(bounded())


def _launch(
    step: str, fn: Callable[..., Any], inputs: dict[str, Any], timeout: float | None
) -> _Flight:
    deadline = None if timeout is None else time.monotonic() + timeout
    return _Flight(_executor().submit(_call, step, fn, inputs, timeout), deadline)


def start(
    key: Key, step: str, fn: Callable[..., Any], inputs: dict[str, Any], timeout: float | None
) -> None:
    """Start ``step``'s handler ahead of its turn, unless it was started (or taken) before."""
    with _lock:
        steps = _flights.setdefault(key, {})
        if step not in steps:
            steps[step] = _launch(step, fn, inputs, timeout)


def take(
    key: Key, step: str, fn: Callable[..., Any], inputs: dict[str, Any], timeout: float | None
) -> Any:
    """The result of ``step``'s handler: the run started ahead if there is one, else a new one.

    Raises what the handler raised, or `TimeoutError` once ``timeout`` seconds passed since it
    started.
    """
    with _lock:
        steps = _flights.setdefault(key, {})
        flight = steps.get(step)
        steps[step] = None  # taken: a retry is this step's own to start
    if flight is None:
        flight = _launch(step, fn, inputs, timeout)
    left = None if flight.deadline is None else max(0.0, flight.deadline - time.monotonic())
    try:
        return flight.future.result(timeout=left)
    except FutureTimeout as exc:
        if flight.future.done():
            raise  # the handler's own TimeoutError (or an async one's, already worded)
        raise _timed_out(step, timeout) from exc


def forget(key: Key) -> None:
    """Drop what is kept for an instance's run (its DAG ended)."""
    with _lock:
        _flights.pop(key, None)

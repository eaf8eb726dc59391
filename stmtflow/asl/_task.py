"""Task states: call the resource's Python callable, or hand out a task token and wait.

``resources`` maps a ``Resource`` string to a callable taking the task's input (the
effective input, or what ``Parameters`` builds) and returning its result; it may be ``async``.
A callable that raises fails the Task with the error named by `TaskError.error`, or else by
the exception's class name, its message as the cause.

A Resource ending in ``.waitForTaskToken`` is called the same way (looked up with or
without the suffix), with ``$$.Task.Token`` in its context so ``Parameters`` can pass the
token on; its return value is ignored and the Task waits until the token is sent back (see
`stmtflow.asl.load`), or fails with ``States.Timeout`` after ``TimeoutSeconds``.

``TimeoutSeconds`` (or ``TimeoutSecondsPath``) also bounds a plain call: an ``async`` one is
cancelled, a plain function is left to finish in its thread while the Task fails with
``States.Timeout``.

Example:
    >>> resource_for({"Resource": "arn:x:wait.waitForTaskToken"}, {"arn:x:wait": print}) is print
    True
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import inspect
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from stmtflow.asl._dataflow import input_of, result_output, template
from stmtflow.asl._failure import AslFailure, error_of
from stmtflow.asl._outcome import Blocked, Outcome, StateRun
from stmtflow.asl._paths import query

__all__ = ["TOKEN_SUFFIX", "call", "resource_for", "run_task"]

TOKEN_SUFFIX = ".waitForTaskToken"


def resource_for(spec: dict[str, Any], resources: dict[str, Any]) -> Callable[..., Any] | None:
    """The callable a Task's Resource names, or None."""
    name = spec["Resource"]
    if name in resources:
        return resources[name]  # type: ignore[no-any-return]
    if name.endswith(TOKEN_SUFFIX):
        found = resources.get(name[: -len(TOKEN_SUFFIX)])
        return found
    return None


def _timeout(spec: dict[str, Any], value: Any, ctx: Any) -> float | None:
    if "TimeoutSeconds" in spec:
        return float(spec["TimeoutSeconds"])
    if "TimeoutSecondsPath" in spec:
        seconds = query(spec["TimeoutSecondsPath"], value, ctx)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise AslFailure("States.Runtime", f"TimeoutSecondsPath gives {seconds!r}")
        return float(seconds)
    return None


def run_task(run: StateRun) -> Outcome:
    spec, frame, runner = run.spec, run.frame, run.runner
    now: datetime = runner.now()
    phase = frame.get("phase")
    if phase == "retry":
        if now < datetime.fromisoformat(frame["due"]):
            return Blocked()
        frame.pop("phase")
        frame.pop("due")
    ctx = runner.context(frame)
    raw = frame["input"]
    if phase == "token":
        reply = frame.get("reply")
        if reply is None:
            if frame.get("due") and now >= datetime.fromisoformat(frame["due"]):
                raise AslFailure("States.Timeout", "the task token was not sent back in time")
            return Blocked()
        if "error" in reply:
            raise AslFailure(reply["error"], reply.get("cause"))
        return run.finish(result_output(spec, raw, reply.get("output"), ctx))
    fn = resource_for(spec, runner.resources)
    if fn is None:
        raise AslFailure("States.Runtime", f"no resource is given for {spec['Resource']!r}")
    value = input_of(spec, raw, ctx)
    timeout = _timeout(spec, value, ctx)
    if spec["Resource"].endswith(TOKEN_SUFFIX):
        frame["token"] = runner.new_token()
        frame["phase"] = "token"
        if timeout is not None:
            frame["due"] = (now + timedelta(seconds=timeout)).isoformat()
        ctx = runner.context(frame)
        payload = template(spec["Parameters"], value, ctx) if "Parameters" in spec else value
        runner.spend(calls=1)
        call(fn, payload, None)
        return Blocked()
    payload = template(spec["Parameters"], value, ctx) if "Parameters" in spec else value
    runner.spend(calls=1)
    result = call(fn, payload, timeout)
    return run.finish(result_output(spec, raw, result, ctx))


def call(fn: Callable[..., Any], payload: Any, timeout: float | None) -> Any:
    """Call a resource, awaiting it if it is async; its exceptions become `AslFailure`.

    The resource gets a copy of its input: what it changes in it stays its own, as it would
    across a network.
    """
    payload = copy.deepcopy(payload)
    try:
        if timeout is None and not inspect.iscoroutinefunction(fn):
            result = fn(payload)
            if inspect.isawaitable(result):
                result = _await(result, None)
            return result
        if inspect.iscoroutinefunction(fn):
            return _await(fn(payload), timeout)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            return pool.submit(fn, payload).result(timeout=timeout)
        finally:
            pool.shutdown(wait=False)
    except (TimeoutError, concurrent.futures.TimeoutError):
        raise AslFailure("States.Timeout", f"the task ran longer than {timeout} s") from None
    except AslFailure:
        raise
    except Exception as exc:
        raise error_of(exc) from exc


def _await(awaitable: Any, timeout: float | None) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(awaitable, timeout)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Inside a running loop (an async driver): run the coroutine on a loop of its own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()

"""What each state type does with its frame: Pass, Choice, Wait, Succeed, Fail and the dispatch.

Task lives in `stmtflow.asl._task`, Parallel and Map in `stmtflow.asl._fanout`. Each
function reads the frame's raw input, follows the data flow its type has
(`stmtflow.asl._dataflow`), and returns an outcome (`stmtflow.asl._outcome`).

A Wait arms a timer once (its frame's ``due``) and passes when the runner's clock reaches it,
so a 0-second or past-due Wait passes at once and a long one leaves the frame blocked until
the workflow's timer fires.

Example:
    >>> from stmtflow.asl._outcome import StateRun
    >>> class R:
    ...     def context(self, frame): return {}
    >>> run_state(StateRun(R(), {"input": {"a": 1}, "at": "P"},
    ...                    {"Type": "Pass", "Result": 2, "ResultPath": "$.b", "End": True}))
    Done(output={'a': 1, 'b': 2})
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from stmtflow.asl._choice import choose, parse_timestamp
from stmtflow.asl._dataflow import input_of, output_of, put, template
from stmtflow.asl._failure import AslFailure
from stmtflow.asl._fanout import run_map, run_parallel
from stmtflow.asl._intrinsics import evaluate
from stmtflow.asl._outcome import Blocked, Done, Failed, Next, Outcome, StateRun
from stmtflow.asl._paths import query
from stmtflow.asl._task import run_task

__all__ = ["run_state"]


def run_pass(run: StateRun) -> Outcome:
    spec, raw = run.spec, run.frame["input"]
    ctx = run.runner.context(run.frame)
    value = input_of(spec, raw, ctx)
    if "Parameters" in spec:
        value = template(spec["Parameters"], value, ctx)
    result = spec.get("Result", value)
    return run.finish(output_of(spec, put(raw, spec.get("ResultPath", "$"), result), ctx))


def run_choice(run: StateRun) -> Outcome:
    spec = run.spec
    ctx = run.runner.context(run.frame)
    value = input_of(spec, run.frame["input"], ctx)
    target = choose(spec, value, ctx)
    return Next(target, output_of(spec, value, ctx))


def run_succeed(run: StateRun) -> Outcome:
    ctx = run.runner.context(run.frame)
    return Done(output_of(run.spec, input_of(run.spec, run.frame["input"], ctx), ctx))


def run_fail(run: StateRun) -> Outcome:
    spec, raw = run.spec, run.frame["input"]
    ctx = run.runner.context(run.frame)
    error = _text_field(spec, "Error", raw, ctx)
    cause = _text_field(spec, "Cause", raw, ctx)
    return Failed(error, cause)


def _text_field(spec: dict[str, Any], field: str, raw: Any, ctx: Any) -> str | None:
    if field in spec:
        return str(spec[field])
    path = spec.get(field + "Path")
    if path is None:
        return None
    value = evaluate(path, raw, ctx) if path.startswith("States.") else query(path, raw, ctx)
    if not isinstance(value, str):
        raise AslFailure("States.Runtime", f"{field}Path {path!r} gives a non-string value")
    return value


def run_wait(run: StateRun) -> Outcome:
    spec, frame = run.spec, run.frame
    ctx = run.runner.context(frame)
    now: datetime = run.runner.now()
    value = input_of(spec, frame["input"], ctx)
    if frame.get("phase") != "wait":
        frame["phase"] = "wait"
        frame["due"] = _wait_until(spec, value, ctx, now).isoformat()
    if now < datetime.fromisoformat(frame["due"]):
        return Blocked()
    return run.finish(output_of(spec, value, ctx))


def _wait_until(spec: dict[str, Any], value: Any, ctx: Any, now: datetime) -> datetime:
    if "Seconds" in spec:
        return now + timedelta(seconds=spec["Seconds"])
    if "SecondsPath" in spec:
        seconds = query(spec["SecondsPath"], value, ctx)
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise AslFailure(
                "States.Runtime",
                f"SecondsPath {spec['SecondsPath']!r} gives {seconds!r}, not whole seconds",
            )
        return now + timedelta(seconds=seconds)
    stamp = spec["Timestamp"] if "Timestamp" in spec else query(spec["TimestampPath"], value, ctx)
    when = parse_timestamp(stamp)
    if when is None:
        raise AslFailure("States.Runtime", f"{stamp!r} is not an RFC 3339 timestamp")
    return when


RUNNERS: dict[str, Callable[[StateRun], Outcome]] = {
    "Pass": run_pass,
    "Choice": run_choice,
    "Succeed": run_succeed,
    "Fail": run_fail,
    "Wait": run_wait,
    "Task": run_task,
    "Parallel": run_parallel,
    "Map": run_map,
}


def run_state(run: StateRun) -> Outcome:
    """Run (or go on running) the frame's current state."""
    return RUNNERS[run.spec["Type"]](run)

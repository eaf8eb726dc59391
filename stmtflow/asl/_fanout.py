"""Parallel and Map: states that run child frames and gather their outputs into an array.

A Parallel starts one child frame per branch, each given the same input (the effective input,
or what ``Parameters`` builds). A Map starts one child frame per item of the array at
``ItemsPath`` (applied to the effective input), each given the item or what ``ItemSelector``
(or the legacy ``Parameters``) builds with ``$$.Map.Item.Index`` and ``$$.Map.Item.Value``
(which the states of the iteration see too, though not those of a Parallel inside it);
at most ``MaxConcurrency`` of them run at once (0: no limit). The children are frames of the
same execution, moved by the same runner, so a branch waiting on a timer or a token waits
durably like the top level does.

When every child succeeded, the outputs, in branch or item order, are the state's result
(then ResultSelector, ResultPath, OutputPath). When a child fails, the state fails with its
error, and the other children are dropped; a Map with ``ToleratedFailureCount`` or
``ToleratedFailurePercentage`` instead goes on while the failures stay within them (a failed
item's output is null) and fails with ``States.ExceedToleratedFailureThreshold`` once they
do not. A Retry of a Parallel or Map starts every child again.

Example:
    >>> tolerated({"ToleratedFailureCount": 1}, failures=1, total=4)
    True
    >>> tolerated({"ToleratedFailurePercentage": 20}, failures=1, total=4)
    False
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from stmtflow.asl._dataflow import input_of, result_output, template
from stmtflow.asl._failure import AslFailure
from stmtflow.asl._frames import new_frame
from stmtflow.asl._outcome import Blocked, Outcome, StateRun
from stmtflow.asl._paths import query

__all__ = ["run_map", "run_parallel", "tolerated"]


def _retry_due(run: StateRun) -> bool:
    """Whether the state waits out a retry's back-off (else it starts afresh if it was)."""
    frame = run.frame
    if frame.get("phase") != "retry":
        return False
    if run.runner.now() < datetime.fromisoformat(frame["due"]):
        return True
    frame.pop("phase")
    frame.pop("due")
    return False


def _start(run: StateRun, inputs: list[Any], map_state: bool) -> None:
    frame, runner = run.frame, run.runner
    now = runner.now()
    kids = []
    for index, value in enumerate(inputs):
        where = [*frame["where"], [frame["at"], -1 if map_state else index]]
        kids.append(new_frame(where, runner.machine(where)["StartAt"], value, now))
    frame["kids"] = kids
    frame["phase"] = "kids"
    if map_state:
        frame["progress"] = {"running": [], "next": 0, "ended": 0, "failed": 0}


def _failure(kid: dict[str, Any]) -> AslFailure:
    return AslFailure(kid["end"].get("error"), kid["end"].get("cause"))


def run_parallel(run: StateRun) -> Outcome:
    spec, frame, runner = run.spec, run.frame, run.runner
    if _retry_due(run):
        return Blocked()
    ctx = runner.context(frame)
    if frame.get("phase") != "kids":
        value = input_of(spec, frame["input"], ctx)
        if "Parameters" in spec:
            value = template(spec["Parameters"], value, ctx)
        _start(run, [copy.deepcopy(value) for _ in spec["Branches"]], map_state=False)
        for kid in frame["kids"]:
            kid["started"] = True
    for kid in frame["kids"]:
        if "end" not in kid:
            runner.run_frame(kid)
        if kid.get("end", {}).get("failed"):
            raise _failure(kid)
        if runner.halt:
            break
    if any("end" not in kid for kid in frame["kids"]):
        return Blocked()
    result = [kid["end"]["output"] for kid in frame["kids"]]
    return run.finish(result_output(spec, frame["input"], result, ctx))


def tolerated(spec: dict[str, Any], *, failures: int, total: int) -> bool:
    """Whether ``failures`` of ``total`` items stay within the Map's tolerance."""
    if failures == 0:
        return True
    if "ToleratedFailureCount" in spec and failures <= spec["ToleratedFailureCount"]:
        return True
    pct = spec.get("ToleratedFailurePercentage")
    return pct is not None and total > 0 and failures * 100 / total <= pct


def run_map(run: StateRun) -> Outcome:
    spec, frame, runner = run.spec, run.frame, run.runner
    if _retry_due(run):
        return Blocked()
    ctx = runner.context(frame)
    if frame.get("phase") != "kids":
        value = input_of(spec, frame["input"], ctx)
        items = query(spec.get("ItemsPath", "$"), value, ctx)
        if not isinstance(items, list):
            raise AslFailure(
                "States.QueryEvaluationError",
                f"ItemsPath {spec.get('ItemsPath', '$')!r} does not give an array",
            )
        selector = spec.get("ItemSelector", spec.get("Parameters"))
        inputs = []
        for index, item in enumerate(items):
            if selector is None:
                inputs.append(copy.deepcopy(item))
                continue
            item_ctx = {**ctx, "Map": {"Item": {"Index": index, "Value": item}}}
            inputs.append(template(selector, value, item_ctx))
        _start(run, inputs, map_state=True)
        for index, (kid, item) in enumerate(zip(frame["kids"], items, strict=True)):
            kid["item"] = {"Index": index, "Value": copy.deepcopy(item)}
    kids = frame["kids"]
    limit = int(spec.get("MaxConcurrency", 0) or 0)
    progress = _progress(frame)
    for index in list(progress["running"]):
        _move(run, progress, index)
        if runner.halt:
            break
    else:
        while progress["next"] < len(kids) and not (limit and len(progress["running"]) >= limit):
            index = progress["next"]
            kids[index]["started"] = True
            progress["next"] += 1
            progress["running"].append(index)
            _move(run, progress, index)
            if runner.halt:
                break
    if progress["ended"] < len(kids):
        return Blocked()
    result = [kid["end"].get("output") for kid in kids]
    return run.finish(result_output(spec, frame["input"], result, ctx))


def _progress(frame: dict[str, Any]) -> dict[str, Any]:
    """The Map's progress: its running items (by index, in order), the next item to start,
    and how many ended and failed — so an advance visits what runs, not every item.

    A Map stored before its frame kept a progress (it then only marked its items) gets one
    built from the items, once.
    """
    progress: dict[str, Any] | None = frame.get("progress")
    if progress is None:
        kids = frame["kids"]
        started = [n for n, kid in enumerate(kids) if kid.get("started")]
        progress = {
            "running": [n for n in started if "end" not in kids[n]],
            "next": started[-1] + 1 if started else 0,
            "ended": sum(1 for kid in kids if "end" in kid),
            "failed": sum(1 for kid in kids if kid.get("end", {}).get("failed")),
        }
        frame["progress"] = progress
    return progress


def _move(run: StateRun, progress: dict[str, Any], index: int) -> None:
    """Run the Map's item ``index``; when it ends, count it (and its failure, if any)."""
    spec, kids = run.spec, run.frame["kids"]
    kid = kids[index]
    run.runner.run_frame(kid)
    if "end" not in kid:
        return
    progress["running"].remove(index)
    progress["ended"] += 1
    if not kid["end"].get("failed"):
        return
    progress["failed"] += 1
    failures = progress["failed"]
    if "ToleratedFailureCount" not in spec and "ToleratedFailurePercentage" not in spec:
        raise _failure(kid)
    if not tolerated(spec, failures=failures, total=len(kids)):
        raise AslFailure(
            "States.ExceedToleratedFailureThreshold",
            f"{failures} of {len(kids)} items failed, more than the Map tolerates",
        )

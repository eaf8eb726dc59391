"""W9 (Amazon States Language): states per second of a Pass/Choice loop of 1 000 iterations.

The state machine (`LOOP`) counts ``$.i`` from 0 to ``n`` with a Choice and a Pass per
iteration, then succeeds: ``2 n + 3`` states. It runs

- (a) through `stmtflow.asl.run` (the engine over the memory store, fake clock), as a test or
  the conformance checker runs it;
- (b) through the engine on SQLite, one durable commit per advance (the default advance
  moves up to 1 000 states before it checkpoints);
- (c) on SQLite with a checkpoint after every state (``asl_budget = 1``), the cost of making
  each state durable on its own;

next to (d) the interpreter alone (`stmtflow.asl._machine.Runner` on the frames, no engine,
no store), the floor of (a) and (b).

Then a Map of N Task items (`MAP`): each advance makes one Task call, so a run is N + 1
advances; the rows give ms per advance at a small and a large N,

- (e) the interpreter alone: what the Map's own bookkeeping costs (it visits the items that
  run, so it stays flat as N grows);
- (f) the engine on SQLite: each advance's checkpoint also saves the execution, whose size
  follows N (every item's input and output), so this one grows with N.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from benchmarks.harness import Result, Settings, Stopwatch, measure
from stmtflow import asl
from stmtflow.asl._frames import new_execution
from stmtflow.asl._machine import Runner
from stmtflow.runtime import Engine

LOOP: dict[str, Any] = {
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Result": 0, "ResultPath": "$.i", "Next": "Check"},
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThanPath": "$.n", "Next": "Step"}],
            "Default": "Done",
        },
        "Step": {
            "Type": "Pass",
            "Parameters": {"n.$": "$.n", "i.$": "States.MathAdd($.i, 1)"},
            "Next": "Check",
        },
        "Done": {"Type": "Succeed"},
    },
}

Loop = asl.load(LOOP, name="AslLoop")


class StatePerCheckpoint(Loop):  # type: ignore[misc,valid-type]
    """The same machine, checkpointed after every state."""

    workflow_name = "AslLoopPerState"
    asl_budget = 1


MAP: dict[str, Any] = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "StartAt": "Work",
                "States": {"Work": {"Type": "Task", "Resource": "work", "End": True}},
            },
            "End": True,
        }
    },
}

Mapper = asl.load(MAP, resources={"work": lambda item: item}, name="AslMapBench")


def _iterations(settings: Settings) -> int:
    return 100 if settings.quick else 1000


def _states(n: int) -> int:
    return 2 * n + 3


def _check(output: Any, n: int) -> None:
    assert output == {"n": n, "i": n}, output


def _interpreter(n: int) -> float:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    execution = new_execution(LOOP, {"n": n}, now)
    runner = Runner(LOOP, {}, lambda: now, budget=10**9)
    with Stopwatch() as sw:
        runner.advance(execution)
    _check(execution["result"]["output"], n)
    return _states(n) / sw.seconds


def _run(n: int) -> float:
    with Stopwatch() as sw:
        result = asl.run(LOOP, {"n": n})
    _check(result.output, n)
    return _states(n) / sw.seconds


def _engine(url: str, cls: type[asl.AslWorkflow], n: int) -> float:
    with Engine(url, [cls], max_steps=10**6) as engine:
        id = uuid.uuid4().hex
        with Stopwatch() as sw:
            inst = engine.start(cls, {"input": {"n": n}}, id=id)
    data: Any = inst.data
    _check(data.result["output"], n)
    return _states(n) / sw.seconds


def _map_interpreter(n: int) -> float:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    execution = new_execution(MAP, {"items": list(range(n))}, now)
    runner = Runner(MAP, {"work": lambda item: item}, lambda: now)
    advances = 0
    with Stopwatch() as sw:
        while execution["result"] is None:
            runner.advance(execution)
            advances += 1
    assert execution["result"]["output"] == list(range(n))
    return sw.seconds * 1000 / advances


def _map_engine(url: str, n: int) -> float:
    with Engine(url, [Mapper], max_steps=10**6) as engine:
        id = uuid.uuid4().hex
        with Stopwatch() as sw:
            inst = engine.start(Mapper, {"input": {"items": list(range(n))}}, id=id)
    data: Any = inst.data
    assert data.result["output"] == list(range(n))
    return sw.seconds * 1000 / (n + 1)


def _map_rows(settings: Settings) -> list[Result]:
    db = settings.workdir / "w9map.db"
    small, large = (20, 200) if settings.quick else (100, 5000)
    engine_large = 200 if settings.quick else 1000
    cases = [
        ("(e) Map of Tasks, the interpreter alone", small, lambda: _map_interpreter(small)),
        ("(e) Map of Tasks, the interpreter alone", large, lambda: _map_interpreter(large)),
        (
            "(f) Map of Tasks, engine on SQLite",
            small,
            lambda: _map_engine(f"sqlite:///{db}", small),
        ),
        (
            "(f) Map of Tasks, engine on SQLite",
            engine_large,
            lambda: _map_engine(f"sqlite:///{db}", engine_large),
        ),
    ]
    results = []
    for case, n, run in cases:
        big = n >= 1000
        value, samples = measure(run, 1 if big else settings.repeats, warmup=0 if big else 1)
        note = f"{n:,} items, {n + 1:,} advances per run"
        results.append(
            Result("W9", f"{case}: ms per advance at {n:,} items", value, "ms", samples, note=note)
        )
    return results


def w9(settings: Settings) -> list[Result]:
    n = _iterations(settings)
    db = settings.workdir / "w9.db"
    cases = [
        ("(a) asl.run, in memory", lambda: _run(n)),
        (
            "(b) engine on SQLite, advance of up to 1 000 states",
            lambda: _engine(f"sqlite:///{db}", Loop, n),
        ),
        (
            "(c) engine on SQLite, a checkpoint per state",
            lambda: _engine(f"sqlite:///{db}", StatePerCheckpoint, n),
        ),
        ("(d) the interpreter alone (no engine, no store)", lambda: _interpreter(n)),
    ]
    results = []
    for case, run in cases:
        value, samples = measure(run, settings.repeats)
        note = f"{n:,} iterations, {_states(n):,} states per run"
        results.append(
            Result("W9", f"{case}: states per second", value, "states/s", samples, note=note)
        )
    return results + _map_rows(settings)

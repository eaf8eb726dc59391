"""State machines run by the engine on every store: durable Wait timers, task tokens sent back
in a later process, failures, resuming from the stored frames, and diagrams."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import stmtflow as sf
from stmtflow import asl
from stmtflow.cli import cli
from stmtflow.runtime import Engine

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'asl.db'}"
    return "memory://"


SENT: list[Any] = []

ORDER = {
    "StartAt": "Reserve",
    "States": {
        "Reserve": {
            "Type": "Task",
            "Resource": "reserve",
            "ResultPath": "$.reservation",
            "Next": "Cool off",
        },
        "Cool off": {"Type": "Wait", "Seconds": 3600, "Next": "Approve"},
        "Approve": {
            "Type": "Task",
            "Resource": "approve.waitForTaskToken",
            "Parameters": {"token.$": "$$.Task.Token", "id.$": "$.id"},
            "ResultPath": "$.approval",
            "Catch": [{"ErrorEquals": ["Declined"], "ResultPath": "$.declined", "Next": "Drop"}],
            "End": True,
        },
        "Drop": {"Type": "Fail", "Error": "OrderDropped", "CausePath": "$.declined.Cause"},
    },
}

RESOURCES = {"reserve": lambda order: {"slot": order["id"] * 10}, "approve": SENT.append}
Order = asl.load(ORDER, resources=RESOURCES, name="AslOrder")


@pytest.fixture(autouse=True)
def _clear() -> None:
    SENT.clear()


def test_a_wait_state_is_a_durable_timer_and_a_token_comes_back_in_a_later_engine(
    url: str,
) -> None:
    clock = Clock()
    first = Engine(url, [Order], clock=clock)
    inst = first.start(Order, {"input": {"id": 4}}, id="o-4")
    assert inst.status.value == "waiting"
    assert inst.wake_at == T0 + timedelta(hours=1)
    assert inst.data.execution["root"]["at"] == "Cool off"
    clock.now = T0 + timedelta(minutes=59)
    assert first.tick() == 0
    clock.now = T0 + timedelta(hours=1)
    assert first.tick() == 1
    assert len(SENT) == 1
    # A fresh engine (another process, say) delivers the token: the state is all in the store.
    with Engine(first.store if url == "memory://" else url, [Order], clock=clock) as engine:
        engine.send("o-4", asl.TOKEN_EVENT, {"token": SENT[0]["token"], "output": "yes"})
        inst = engine.get("o-4")
    first.close()
    assert inst.status.value == "finished"
    assert inst.data.result == {
        "status": "SUCCEEDED",
        "output": {"id": 4, "reservation": {"slot": 40}, "approval": "yes"},
    }


def test_a_failed_execution_fails_the_instance_with_the_asl_error(url: str) -> None:
    clock = Clock()
    with Engine(url, [Order], clock=clock) as engine:
        engine.start(Order, {"input": {"id": 5}}, id="o-5")
        clock.now = T0 + timedelta(hours=1)
        engine.tick()
        reply = {"token": SENT[0]["token"], "error": "Declined", "cause": "out of stock"}
        engine.send("o-5", asl.TOKEN_EVENT, reply)
        inst = engine.get("o-5")
    assert inst.status.value == "failed"
    assert inst.data.result == {
        "status": "FAILED",
        "error": "OrderDropped",
        "cause": "out of stock",
    }
    assert inst.error is not None and "OrderDropped: out of stock" in inst.error


LOOP = {
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Result": 0, "ResultPath": "$.i", "Next": "Check"},
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThanPath": "$.n", "Next": "Step"}],
            "Default": "Rest",
        },
        "Step": {
            "Type": "Pass",
            "Parameters": {"n.$": "$.n", "i.$": "States.MathAdd($.i, 1)"},
            "Next": "Check",
        },
        "Rest": {"Type": "Wait", "Seconds": 60, "End": True},
    },
}


def test_the_stored_instance_holds_the_current_state_not_the_history(url: str) -> None:
    Loop = asl.load(LOOP, name="AslLoop")
    sizes = []
    with Engine(url, [Loop], clock=Clock()) as engine:
        for n in (3, 1500):
            inst = engine.start(Loop, {"input": {"n": n}}, id=f"loop-{n}")
            assert inst.data.execution["root"]["at"] == "Rest"
            assert inst.data.execution["root"]["input"] == {"n": n, "i": n}
            record = engine.store.get(f"loop-{n}")
            sizes.append(len(record.data) + len(record.state))
    assert abs(sizes[1] - sizes[0]) < 50  # 3 and 1 500 iterations store the same


def test_resuming_continues_from_the_stored_frames(tmp_path: Path) -> None:
    """Data saved mid-execution, loaded into a fresh class object, goes on where it stood."""
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    calls: list[int] = []
    machine = {
        "StartAt": "Items",
        "States": {
            "Items": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "Wait",
                    "States": {
                        "Wait": {"Type": "Wait", "SecondsPath": "$.s", "Next": "Do"},
                        "Do": {"Type": "Task", "Resource": "do", "End": True},
                    },
                },
                "End": True,
            }
        },
    }

    def do(item: Any) -> Any:
        calls.append(item["s"])
        return item["s"] * 2

    clock = Clock()
    with Engine(url, [asl.load(machine, resources={"do": do}, name="M")], clock=clock) as engine:
        engine.start("M", {"input": [{"s": 10}, {"s": 20}]}, id="m")
        clock.now = T0 + timedelta(seconds=10)
        engine.tick()
    assert calls == [10]
    again = asl.load(machine, resources={"do": do}, name="M")
    with Engine(url, [again], clock=clock) as engine:
        clock.now = T0 + timedelta(seconds=20)
        engine.tick()
        inst = engine.get("m")
    assert calls == [10, 20]  # the first item's task is not run again
    assert inst.data.result == {"status": "SUCCEEDED", "output": [20, 40]}


def test_the_workflow_draws_like_any_other(tmp_path: Path) -> None:
    text = sf.to_mermaid(Order().definition())
    assert "advance" in text and "waiting" in text
    source = tmp_path / "machines.py"
    source.write_text(
        f"from stmtflow import asl\nLoop = asl.load({json.dumps(LOOP)!r}, name='AslLoop')\n"
    )
    result = CliRunner().invoke(cli, ["--db", "memory://", "graph", f"{source}:Loop"])
    assert result.exit_code == 0, result.output
    assert "advance" in result.output


def test_load_reports_every_problem_at_once() -> None:
    bad = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Next": "Nowhere"},
            "B": {"Type": "Teleport"},
            "C": {"Type": "Pass", "InputPath": "no-dollar", "End": True},
            "D": {"Type": "Task", "End": True},
        },
    }
    with pytest.raises(asl.DefinitionError) as info:
        asl.load(bad)
    issues = info.value.issues
    assert "States.A.Next: no state is named 'Nowhere'" in issues
    assert "States.B: unknown state type 'Teleport'" in issues
    assert "States.C.InputPath: 'no-dollar' does not start with '$'" in issues
    assert "States.D.Resource: must be a string naming the resource" in issues
    assert "States.C: unreachable from StartAt" in issues
    with pytest.raises(asl.DefinitionError, match="not JSON text"):
        asl.load("{nope")


class Crash(BaseException):
    """Stands for the process dying: nothing catches it, nothing after it is committed."""


def test_a_crash_in_a_task_repeats_that_task_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    calls: list[str] = []
    crash = [True]

    def first(payload: Any) -> str:
        calls.append("first")
        return "one"

    def second(payload: Any) -> str:
        calls.append("second")
        if crash[0]:
            crash[0] = False
            raise Crash
        return "two"

    machine = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Task", "Resource": "first", "ResultPath": "$.a", "Next": "Second"},
            "Second": {"Type": "Task", "Resource": "second", "ResultPath": "$.b", "End": True},
        },
    }
    resources = {"first": first, "second": second}
    clock = Clock()
    engine = Engine(url, [asl.load(machine, resources=resources, name="Two")], clock=clock)
    with pytest.raises(Crash):
        engine.start("Two", {"input": {}}, id="two")
    # What the first Task gave was committed before the second ran.
    stored = engine.store.get("two")
    assert json.loads(stored.data)["execution"]["root"]["at"] == "Second"
    # Another process takes over once the dead one's lease has run out.
    clock.now = T0 + timedelta(minutes=5)
    with Engine(url, [asl.load(machine, resources=resources, name="Two")], clock=clock) as again:
        again.tick()
        inst = again.get("two")
    assert calls == ["first", "second", "second"]
    assert inst.data.result == {"status": "SUCCEEDED", "output": {"a": "one", "b": "two"}}

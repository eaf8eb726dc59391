"""A Map keeps its progress (running items, next item, ended and failed counts) in its frame,
so an advance visits the items that run rather than every item; a Map stored before it kept
one loads and goes on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stmtflow import asl
from stmtflow.state import load_state
from stmtflow.testing import WorkflowHarness

FIXTURE = Path(__file__).parent / "snapshots" / "asl" / "running_map.json"
"""A Map of five token Tasks (MaxConcurrency 2) stored by the release before progress was
kept: item 0 answered, items 1 and 2 waiting for their tokens, items 3 and 4 not started."""


def asking(sent: list[Any], limit: int, name: str) -> type[asl.AslWorkflow]:
    processor = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "ask.waitForTaskToken",
                "Parameters": {"token.$": "$$.Task.Token", "item.$": "$"},
                "End": True,
            }
        },
    }
    each = {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": limit}
    definition = {
        "StartAt": "Each",
        "States": {"Each": {**each, "ItemProcessor": processor, "End": True}},
    }
    return asl.load(definition, resources={"ask": sent.append}, name=name)


def answer(h: WorkflowHarness[Any], token: str, output: Any) -> None:
    h.send(asl.TOKEN_EVENT, {"token": token, "output": output})


def test_a_map_stored_before_progress_was_kept_loads_and_goes_on() -> None:
    stored = json.loads(FIXTURE.read_text())
    sent: list[Any] = []
    definition = stored["definition"]
    cls = asl.load(definition, resources={"ask": sent.append}, name="AslMapFixture")
    state = load_state(json.dumps(stored["state"]))
    h = WorkflowHarness(cls, data=stored["data"], state=state)
    root = stored["data"]["execution"]["root"]
    waiting = [kid["token"] for kid in root["kids"] if "token" in kid]
    assert "progress" not in root and len(waiting) == 2
    answer(h, waiting[1], "three")  # out of order: item 3 starts, MaxConcurrency still 2
    assert [m["item"] for m in sent] == [4]
    answer(h, waiting[0], "two")
    answer(h, sent[0]["token"], "four")
    assert [m["item"] for m in sent] == [4, 5]
    answer(h, sent[1]["token"], "five")
    assert h.data.result == {
        "status": "SUCCEEDED",
        "output": ["one", "two", "three", "four", "five"],
    }


def test_the_map_s_frame_keeps_its_progress() -> None:
    sent: list[Any] = []
    h = WorkflowHarness(asking(sent, 2, "Progress"), data={"input": {"items": list(range(5))}})
    h.start()
    root = h.data.execution["root"]
    assert root["progress"] == {"running": [0, 1], "next": 2, "ended": 0, "failed": 0}
    answer(h, sent[1]["token"], 1)
    root = h.data.execution["root"]
    assert root["progress"] == {"running": [0, 2], "next": 3, "ended": 1, "failed": 0}
    h.send(asl.TOKEN_EVENT, {"token": sent[0]["token"], "error": "No"})
    assert h.data.result == {"status": "FAILED", "error": "No", "cause": None}


def test_a_retried_map_starts_its_progress_again() -> None:
    calls: list[int] = []

    def work(item: int) -> int:
        calls.append(item)
        if item == 2 and calls.count(2) == 1:
            raise RuntimeError("once")
        return item * 10

    processor = {"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": "work", "End": True}}}
    each = {"Type": "Map", "ItemProcessor": processor, "End": True}
    retry = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1}]
    machine = {"StartAt": "M", "States": {"M": {**each, "Retry": retry}}}
    result = asl.run(machine, [0, 1, 2, 3], resources={"work": work})
    assert calls == [0, 1, 2, 0, 1, 2, 3]
    assert result.output == [0, 10, 20, 30]


def test_a_map_of_many_items_gives_every_output_in_order() -> None:
    processor = {"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": "work", "End": True}}}
    machine = {
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "ItemProcessor": processor, "End": True}},
    }
    items = list(range(50))
    result = asl.run(machine, items, resources={"work": lambda n: -n})
    assert result.output == [-n for n in items]

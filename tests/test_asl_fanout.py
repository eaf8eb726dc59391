"""Parallel and Map: branch and item outputs, failures, Retry and Catch, MaxConcurrency,
tolerated failures, and durable waits inside branches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stmtflow import asl
from stmtflow.testing import WorkflowHarness


def passing(**fields: Any) -> dict[str, Any]:
    return {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True, **fields}}}


def failing(error: str, cause: str | None = None) -> dict[str, Any]:
    fail: dict[str, Any] = {"Type": "Fail", "Error": error}
    if cause:
        fail["Cause"] = cause
    return {"StartAt": "F", "States": {"F": fail}}


def machine(state: dict[str, Any]) -> dict[str, Any]:
    states: dict[str, Any] = {"X": {**state, "Next": "Done"}, "Done": {"Type": "Succeed"}}
    if "Catch" in state:
        states["Caught"] = {"Type": "Pass", "End": True}
    return {"StartAt": "X", "States": states}


def test_parallel_gives_each_branch_the_input_and_gathers_outputs_in_order() -> None:
    state = {
        "Type": "Parallel",
        "Parameters": {"n.$": "$.n"},
        "Branches": [passing(Result="first"), passing(), passing(ResultPath="$.also", Result=2)],
    }
    result = asl.run(machine(state), {"n": 1, "dropped": True})
    assert result.output == ["first", {"n": 1}, {"n": 1, "also": 2}]


def test_a_failed_branch_fails_the_parallel_with_its_error() -> None:
    state = {"Type": "Parallel", "Branches": [passing(), failing("Boom", "no")]}
    result = asl.run(machine(state), {})
    assert (result.status, result.error, result.cause) == ("FAILED", "Boom", "no")


def test_a_parallel_s_catcher_takes_a_branch_s_error() -> None:
    state = {
        "Type": "Parallel",
        "Branches": [passing(), failing("Boom")],
        "Catch": [{"ErrorEquals": ["Boom"], "ResultPath": "$.error", "Next": "Caught"}],
    }
    result = asl.run(machine(state), {"id": 3})
    assert result.output == {"id": 3, "error": {"Error": "Boom", "Cause": ""}}


def test_a_retried_parallel_runs_every_branch_again() -> None:
    calls: list[str] = []

    def count(name: str) -> Any:
        def record(payload: Any) -> Any:
            calls.append(name)
            if name == "b" and calls.count("b") < 2:
                raise asl.TaskError("Flaky")
            return name

        return record

    task = lambda r: {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": r, "End": True}}}  # noqa: E731
    state = {
        "Type": "Parallel",
        "Branches": [task("a"), task("b")],
        "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1}],
    }
    result = asl.run(machine(state), {}, resources={"a": count("a"), "b": count("b")})
    assert result.output == ["a", "b"]
    assert calls == ["a", "b", "a", "b"]


def test_map_runs_each_item_with_the_item_selector_s_context() -> None:
    state = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value", "t.$": "$.tag"},
        "ItemProcessor": passing(Parameters={"both.$": "States.Format('{}:{}', $.i, $.v)"}),
        "ResultPath": "$.out",
    }
    result = asl.run(machine(state), {"items": ["a", "b"], "tag": "T"})
    assert result.output == {
        "items": ["a", "b"],
        "tag": "T",
        "out": [{"both": "0:a"}, {"both": "1:b"}],
    }


def test_the_legacy_iterator_and_parameters_form() -> None:
    state = {
        "Type": "Map",
        "ItemsPath": "$.xs",
        "Parameters": {"value.$": "$$.Map.Item.Value"},
        "Iterator": passing(),
    }
    assert asl.run(machine(state), {"xs": [1, 2]}).output == [{"value": 1}, {"value": 2}]


def test_map_without_items_path_maps_its_input_and_an_empty_array_gives_an_empty_result() -> None:
    state = {"Type": "Map", "ItemProcessor": passing()}
    assert asl.run(machine(state), [1, 2]).output == [1, 2]
    assert asl.run(machine(state), []).output == []


@pytest.mark.parametrize("items", [5, {"a": 1}, "text"])
def test_items_that_are_not_an_array_fail_the_map(items: Any) -> None:
    state = {"Type": "Map", "ItemsPath": "$.xs", "ItemProcessor": passing()}
    result = asl.run(machine(state), {"xs": items})
    assert result.status == "FAILED"


def test_a_failed_item_fails_the_map_and_its_catcher_takes_it() -> None:
    state = {
        "Type": "Map",
        "ItemProcessor": failing("Bad", "item"),
        "Catch": [{"ErrorEquals": ["Bad"], "Next": "Caught"}],
    }
    assert asl.run(machine(state), [1]).output == {"Error": "Bad", "Cause": "item"}


def odd_fails() -> dict[str, Any]:
    return {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.odd", "BooleanEquals": True, "Next": "F"}],
                "Default": "P",
            },
            "F": {"Type": "Fail", "Error": "Odd"},
            "P": {"Type": "Pass", "End": True},
        },
    }


@pytest.mark.parametrize(
    ("tolerance", "status"),
    [
        ({"ToleratedFailureCount": 2}, "SUCCEEDED"),
        ({"ToleratedFailureCount": 1}, "FAILED"),
        ({"ToleratedFailurePercentage": 50}, "SUCCEEDED"),
        ({"ToleratedFailurePercentage": 49}, "FAILED"),
    ],
)
def test_tolerated_failures(tolerance: dict[str, Any], status: str) -> None:
    items = [{"odd": i % 2 == 1} for i in range(4)]  # two of four fail
    state = {"Type": "Map", "ItemProcessor": odd_fails(), **tolerance}
    result = asl.run(machine(state), items)
    assert result.status == status
    if status == "FAILED":
        assert result.error == "States.ExceedToleratedFailureThreshold"
    else:
        assert result.output == [{"odd": False}, None, {"odd": False}, None]


def token_map(limit: int) -> type[asl.AslWorkflow]:
    sent: list[Any] = []
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
    cls = asl.load(
        machine({"Type": "Map", "MaxConcurrency": limit, "ItemProcessor": processor}),
        resources={"ask": sent.append},
        name="Asker",
    )
    cls.sent = sent  # type: ignore[attr-defined]
    return cls


def test_max_concurrency_bounds_the_items_running_at_once() -> None:
    cls = token_map(limit=2)
    h = WorkflowHarness(cls, data={"input": ["a", "b", "c", "d"]}).start()
    sent = cls.sent  # type: ignore[attr-defined]
    assert [m["item"] for m in sent] == ["a", "b"]
    h.send(asl.TOKEN_EVENT, {"token": sent[1]["token"], "output": "B"})
    assert [m["item"] for m in sent] == ["a", "b", "c"]
    for n in (0, 2):
        h.send(asl.TOKEN_EVENT, {"token": sent[n]["token"], "output": sent[n]["item"].upper()})
    assert [m["item"] for m in sent] == ["a", "b", "c", "d"]
    h.send(asl.TOKEN_EVENT, {"token": sent[3]["token"], "output": "D"})
    assert h.data.result == {"status": "SUCCEEDED", "output": ["A", "B", "C", "D"]}


def test_max_concurrency_zero_runs_every_item_at_once() -> None:
    cls = token_map(limit=0)
    WorkflowHarness(cls, data={"input": list(range(5))}).start()
    assert len(cls.sent) == 5  # type: ignore[attr-defined]


def test_branches_wait_on_their_own_timers() -> None:
    wait = lambda s: {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": s, "End": True}}}  # noqa: E731
    cls = asl.load(machine({"Type": "Parallel", "Branches": [wait(60), wait(3600)]}))
    h = WorkflowHarness(cls, data={"input": {"x": 1}}).start()
    assert h.pending()[0].deadline == h.now + timedelta(seconds=60)
    h.advance(timedelta(seconds=60))
    assert h.data.result is None
    assert h.pending()[0].deadline == h.now + timedelta(seconds=3540)
    h.advance(timedelta(seconds=3540))
    assert h.data.result == {"status": "SUCCEEDED", "output": [{"x": 1}, {"x": 1}]}


def test_the_states_of_an_iteration_see_their_item_in_the_context_object() -> None:
    each = passing(Parameters={"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"})
    state = {"Type": "Map", "ItemsPath": "$.xs", "ItemProcessor": each}
    assert asl.run(machine(state), {"xs": ["p", None]}).output == [
        {"i": 0, "v": "p"},
        {"i": 1, "v": None},
    ]
    # Outside a Map there is no item: the path matches nothing.
    outside = asl.run(machine({"Type": "Pass", "Parameters": {"i.$": "$$.Map.Item.Index"}}), {})
    assert (outside.status, outside.error) == ("FAILED", "States.Runtime")

"""Validation of a state machine: each kind of problem, found everywhere, reported at once."""

from __future__ import annotations

from typing import Any

import pytest

from stmtflow import asl


def problems_of(state: dict[str, Any], **others: Any) -> list[str]:
    states = {"S": state, **others}
    return asl.problems({"StartAt": "S", "States": states})


END = {"Type": "Succeed"}


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ({"Type": "Pass"}, 'States.S: needs "Next" or "End": true'),
        ({"Type": "Pass", "Next": "Z", "End": True}, 'States.S: has both "Next" and "End"'),
        ({"Type": "Pass", "Next": "Nope"}, "States.S.Next: no state is named 'Nope'"),
        (
            {"Type": "Pass", "End": True, "InputPath": "x"},
            "States.S.InputPath: 'x' does not start with '$'",
        ),
        (
            {"Type": "Pass", "End": True, "OutputPath": "$.["},
            "States.S.OutputPath: '$.[' is not a valid JSONPath",
        ),
        (
            {"Type": "Pass", "End": True, "ResultPath": "$.a[*]"},
            "States.S.ResultPath: '$.a[*]' is not a reference path",
        ),
        (
            {"Type": "Pass", "End": True, "Parameters": {"a.$": 5}},
            "States.S.Parameters.a.$: must be a Path or an intrinsic function",
        ),
        (
            {"Type": "Pass", "End": True, "Parameters": {"a": {"b.$": "nope"}}},
            "States.S.Parameters.a.b.$: 'nope' does not start with '$'",
        ),
        (
            {"Type": "Pass", "End": True, "Parameters": {"a.$": "States.Nope(1)"}},
            "States.S.Parameters.a.$: unknown intrinsic function States.Nope",
        ),
        (
            {"Type": "Wait", "End": True},
            "States.S: needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
        ),
        (
            {"Type": "Wait", "End": True, "Seconds": -1},
            "States.S.Seconds: must be an integer of at least 0, got -1",
        ),
        (
            {"Type": "Wait", "End": True, "Timestamp": "soon"},
            "States.S.Timestamp: 'soon' is not an RFC 3339 timestamp",
        ),
        ({"Type": "Task", "End": True}, "States.S.Resource: must be a string naming the resource"),
        ({"Type": "Choice", "Choices": []}, "States.S.Choices: must be a non-empty list of rules"),
        (
            {"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEquals": 1, "Next": "Z"}]},
            "States.S.Choices[0].StringEquals: must be a string",
        ),
        (
            {"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": "1", "Next": "Z"}]},
            "States.S.Choices[0].NumericEquals: must be a number",
        ),
        (
            {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": 1, "Next": "Z"}]},
            "States.S.Choices[0].IsNull: must be true or false",
        ),
        (
            {"Type": "Choice", "Choices": [{"Variable": "$.a", "Next": "Z"}]},
            "States.S.Choices[0]: needs exactly one comparison operator, found none",
        ),
        (
            {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": True}]},
            "States.S.Choices[0]: needs a Next",
        ),
        (
            {
                "Type": "Choice",
                "Choices": [{"And": [{"Variable": "a", "IsNull": True}], "Next": "Z"}],
            },
            "States.S.Choices[0].And[0].Variable: 'a' does not start with '$'",
        ),
        (
            {
                "Type": "Choice",
                "Choices": [{"Variable": "$.a", "TimestampEquals": "x", "Next": "Z"}],
            },
            "States.S.Choices[0].TimestampEquals: 'x' is not an RFC 3339 timestamp",
        ),
        (
            {
                "Type": "Choice",
                "Choices": [{"Variable": "$.a", "IsNull": True, "Next": "Z"}],
                "Default": "Q",
            },
            "States.S.Default: no state is named 'Q'",
        ),
        (
            {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": True, "Next": "Q"}]},
            "States.S.Choices[0].Next: no state is named 'Q'",
        ),
        (
            {"Type": "Fail", "Error": "E", "ErrorPath": "$.e"},
            "States.S: has both Error and ErrorPath",
        ),
        (
            {"Type": "Parallel", "End": True, "Branches": []},
            "States.S.Branches: must be a non-empty list of state machines",
        ),
        ({"Type": "Map", "End": True}, "States.S: needs an ItemProcessor (or the older Iterator)"),
        (
            {"Type": "Task", "Resource": "r", "End": True, "Retry": [{"ErrorEquals": []}]},
            "States.S.Retry[0].ErrorEquals: must be a non-empty list of error names",
        ),
        (
            {
                "Type": "Task",
                "Resource": "r",
                "End": True,
                "Retry": [{"ErrorEquals": ["States.ALL", "X"]}],
            },
            "States.S.Retry[0].ErrorEquals: States.ALL must be alone",
        ),
        (
            {
                "Type": "Task",
                "Resource": "r",
                "End": True,
                "Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}],
            },
            "States.S.Retry[0].BackoffRate: must be a number of at least 1.0, got 0.5",
        ),
        (
            {
                "Type": "Task",
                "Resource": "r",
                "End": True,
                "Retry": [{"ErrorEquals": ["X"], "IntervalSeconds": 0}],
            },
            "States.S.Retry[0].IntervalSeconds: must be an integer of at least 1, got 0",
        ),
        (
            {
                "Type": "Task",
                "Resource": "r",
                "End": True,
                "Catch": [{"ErrorEquals": ["X"], "Next": "Nope"}],
            },
            "States.S.Catch[0].Next: no state is named 'Nope'",
        ),
        ({"Type": "Teleport"}, "States.S: unknown state type 'Teleport'"),
    ],
)
def test_each_problem_is_named_where_it_is(state: dict[str, Any], problem: str) -> None:
    found = problems_of(state, Z=END)
    assert any(line.startswith(problem) for line in found), found


def test_every_problem_is_reported_at_once_inside_branches_and_processors_too() -> None:
    branch = {"StartAt": "In", "States": {"In": {"Type": "Pass", "Next": "Gone"}}}
    machine = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Parallel", "Branches": [branch], "Next": "M"},
            "M": {"Type": "Map", "ItemProcessor": {"StartAt": "X", "States": {}}, "End": True},
            "Lost": {"Type": "Succeed"},
        },
    }
    with pytest.raises(asl.DefinitionError) as info:
        asl.validate(machine)
    assert info.value.issues == [
        "States.P.Branches[0].States.In.Next: no state is named 'Gone'",
        "States.M.ItemProcessor.States: must be a non-empty object of states",
        "States.Lost: unreachable from StartAt",
    ]


def test_states_reached_only_through_a_catcher_or_a_choice_are_reachable() -> None:
    machine = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "r",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handle"}],
                "Next": "C",
            },
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.a", "IsNull": True, "Next": "Y"}],
                "Default": "N",
            },
            "Handle": END,
            "Y": END,
            "N": END,
        },
    }
    assert asl.problems(machine) == []


@pytest.mark.parametrize("definition", [[], "[]", {"States": {"A": END}}, {"StartAt": "A"}])
def test_malformed_machines_are_definition_errors(definition: Any) -> None:
    with pytest.raises(asl.DefinitionError):
        asl.load(definition)


def test_what_is_not_supported_is_a_definition_problem() -> None:
    machine = {
        "QueryLanguage": "JSONata",
        "StartAt": "S",
        "States": {"S": {"Type": "Pass", "Assign": {"x": 1}, "End": True}},
    }
    assert asl.problems(machine) == [
        "QueryLanguage: only JSONPath is supported, not 'JSONata'",
        "States.S.Assign: not supported (JSONata and variables are not)",
    ]

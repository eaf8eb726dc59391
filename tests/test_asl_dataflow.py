"""The ASL data flow, as `stmtflow.asl.run` carries it out: paths, templates, ResultPath."""

from __future__ import annotations

from typing import Any

import pytest

from stmtflow import asl


def one(state: dict[str, Any], input: Any) -> asl.AslResult:
    """Run a machine of the one state ``state`` (made terminal) on ``input``."""
    if state["Type"] not in ("Choice", "Succeed", "Fail"):
        state = {**state, "End": True}
    return asl.run({"StartAt": "S", "States": {"S": state}}, input)


def output(state: dict[str, Any], input: Any) -> Any:
    result = one(state, input)
    assert result.status == "SUCCEEDED", result
    return result.output


def error(state: dict[str, Any], input: Any) -> str | None:
    result = one(state, input)
    assert result.status == "FAILED", result
    return result.error


def test_the_five_fields_apply_in_the_specification_s_order() -> None:
    state = {
        "Type": "Parallel",
        "InputPath": "$.order",
        "Parameters": {"id.$": "$.id", "twice.$": "States.MathAdd($.n, $.n)"},
        "Branches": [{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}],
        "ResultSelector": {"got.$": "$[0].twice"},
        "ResultPath": "$.order.result",
        "OutputPath": "$.order",
    }
    # ResultPath writes into the raw input (not the effective one), OutputPath picks from it.
    got = output(state, {"order": {"id": "o1", "n": 4}, "other": True})
    assert got == {"id": "o1", "n": 4, "result": {"got": 8}}


def test_result_path_null_keeps_the_input_and_dollar_replaces_it() -> None:
    assert output({"Type": "Pass", "Result": 1, "ResultPath": None}, {"a": 1}) == {"a": 1}
    assert output({"Type": "Pass", "Result": {"r": 1}, "ResultPath": "$"}, {"a": 1}) == {"r": 1}


def test_result_path_creates_the_objects_a_nested_path_needs() -> None:
    got = output({"Type": "Pass", "Result": "done", "ResultPath": "$.a.b.c"}, {"a": {"x": 1}})
    assert got == {"a": {"x": 1, "b": {"c": "done"}}}


def test_result_path_into_an_array_element_replaces_it() -> None:
    got = output({"Type": "Pass", "Result": 9, "ResultPath": "$.xs[1]"}, {"xs": [0, 1, 2]})
    assert got == {"xs": [0, 9, 2]}


@pytest.mark.parametrize(
    ("path", "input"),
    [("$.a.b", {"a": 5}), ("$.a", [1]), ("$.a", "text"), ("$.xs[5]", {"xs": [0]})],
)
def test_a_result_path_that_cannot_apply_fails_with_result_path_match_failure(
    path: str, input: Any
) -> None:
    state = {"Type": "Pass", "Result": 1, "ResultPath": path}
    assert error(state, input) == "States.ResultPathMatchFailure"


def test_input_path_and_output_path_null_give_an_empty_object() -> None:
    assert output({"Type": "Pass", "InputPath": None}, {"a": 1}) == {}
    assert output({"Type": "Pass", "OutputPath": None}, {"a": 1}) == {}


def test_pass_result_is_copied_as_is_even_with_dollar_keys() -> None:
    assert output({"Type": "Pass", "Result": {"k.$": "$.a"}}, {"a": 1}) == {"k.$": "$.a"}


def test_pass_parameters_are_its_result_when_it_has_no_result_field() -> None:
    got = output({"Type": "Pass", "Parameters": {"x.$": "$.a"}, "ResultPath": "$.p"}, {"a": 1})
    assert got == {"a": 1, "p": {"x": 1}}


def test_templates_are_evaluated_inside_nested_objects_and_arrays() -> None:
    params = {"deep": {"v.$": "$.a"}, "list": [{"w.$": "$.a"}, "plain"], "n": None}
    got = output({"Type": "Pass", "Parameters": params}, {"a": 3})
    assert got == {"deep": {"v": 3}, "list": [{"w": 3}, "plain"], "n": None}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("$.a[*].b", [1, 3]),
        ("$.a[?(@.b > 1)]", [{"b": 3}]),
        ("$.a[-1]", [{"b": 3}]),
        ("$.a[0:1]", [{"b": 1}]),
        ("$.a[1].b", 3),
        ("$['a'][0]['b']", 1),
    ],
)
def test_definite_paths_give_a_value_and_others_a_list(path: str, value: Any) -> None:
    got = output({"Type": "Pass", "Parameters": {"x.$": path}}, {"a": [{"b": 1}, {"b": 3}]})
    assert got == {"x": value}


@pytest.mark.parametrize("field", ["InputPath", "OutputPath"])
def test_a_definite_path_that_matches_nothing_fails_with_states_runtime(field: str) -> None:
    assert error({"Type": "Pass", field: "$.ghost"}, {"a": 1}) == "States.Runtime"


def test_a_parameter_path_that_matches_nothing_fails_with_states_runtime() -> None:
    assert error({"Type": "Pass", "Parameters": {"x.$": "$.ghost"}}, {}) == "States.Runtime"


def test_the_context_object() -> None:
    params = {
        "input.$": "$$.Execution.Input",
        "state.$": "$$.State.Name",
        "retries.$": "$$.State.RetryCount",
        "entered.$": "$$.State.EnteredTime",
    }
    got = output({"Type": "Pass", "Parameters": params}, {"a": 1})
    assert got["input"] == {"a": 1}
    assert got["state"] == "S"
    assert got["retries"] == 0
    assert got["entered"].startswith("2024-01-01T00:00:00")


def test_the_context_object_inside_a_branch_names_the_branch_s_state() -> None:
    branch = {
        "StartAt": "Inner",
        "States": {
            "Inner": {
                "Type": "Pass",
                "Parameters": {"s.$": "$$.State.Name", "i.$": "$$.Execution.Input.a"},
                "End": True,
            }
        },
    }
    got = output({"Type": "Parallel", "Branches": [branch]}, {"a": 7})
    assert got == [{"s": "Inner", "i": 7}]


def test_succeed_applies_input_path_then_output_path() -> None:
    state = {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}
    assert output(state, {"a": {"b": 3}}) == 3


def test_fail_takes_error_and_cause_literally_or_by_path() -> None:
    result = one({"Type": "Fail", "Error": "Bad", "Cause": "why"}, {})
    assert (result.error, result.cause) == ("Bad", "why")
    result = one({"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}, {"e": "E", "c": "C"})
    assert (result.error, result.cause) == ("E", "C")
    result = one(
        {"Type": "Fail", "Error": "E", "CausePath": "States.Format('n={}', $.n)"}, {"n": 2}
    )
    assert result.cause == "n=2"
    assert one({"Type": "Fail"}, {}).error is None


def test_a_fail_path_to_a_non_string_fails_with_states_runtime() -> None:
    assert error({"Type": "Fail", "ErrorPath": "$.e"}, {"e": 5}) == "States.Runtime"


def test_wait_seconds_path_and_timestamp_path() -> None:
    assert output({"Type": "Wait", "SecondsPath": "$.s"}, {"s": 30}) == {"s": 30}
    stamp = {"t": "2030-06-01T00:00:00Z"}
    assert output({"Type": "Wait", "TimestampPath": "$.t"}, stamp) == stamp
    assert error({"Type": "Wait", "SecondsPath": "$.s"}, {"s": "soon"}) == "States.Runtime"
    assert error({"Type": "Wait", "SecondsPath": "$.s"}, {"s": 1.5}) == "States.Runtime"
    assert error({"Type": "Wait", "SecondsPath": "$.s"}, {"s": -1}) == "States.Runtime"
    assert error({"Type": "Wait", "TimestampPath": "$.t"}, {"t": "tomorrow"}) == "States.Runtime"


def test_definitions_are_accepted_as_json_text() -> None:
    text = '{"StartAt": "S", "States": {"S": {"Type": "Pass", "Result": 1, "End": true}}}'
    assert asl.run(text, None).output == 1

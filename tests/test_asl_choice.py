"""Choice rules: every comparison and its Path form, the type tests, And/Or/Not, Default."""

from __future__ import annotations

from typing import Any

import pytest

from stmtflow import asl
from stmtflow.asl._choice import COMPARISONS, matches


def choose(rule: dict[str, Any], input: Any, default: bool = True) -> asl.AslResult:
    states: dict[str, Any] = {
        "C": {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}]},
        "Yes": {"Type": "Pass", "Result": "yes", "End": True},
    }
    if default:
        states["C"]["Default"] = "No"
        states["No"] = {"Type": "Pass", "Result": "no", "End": True}
    return asl.run({"StartAt": "C", "States": states}, input)


def holds(rule: dict[str, Any], input: Any) -> bool:
    result = choose(rule, input)
    assert result.status == "SUCCEEDED", result
    return bool(result.output == "yes")


CASES = [
    ("StringEquals", "abc", "abc", True),
    ("StringEquals", "abc", "abd", False),
    ("StringLessThan", "abc", "abd", True),
    ("StringGreaterThan", "b", "a", True),
    ("StringLessThanEquals", "a", "a", True),
    ("StringGreaterThanEquals", "a", "b", False),
    ("NumericEquals", 1, 1.0, True),
    ("NumericLessThan", 1, 2, True),
    ("NumericGreaterThan", 1, 2, False),
    ("NumericLessThanEquals", 2, 2, True),
    ("NumericGreaterThanEquals", 1.5, 2, False),
    ("BooleanEquals", False, False, True),
    ("TimestampEquals", "2020-01-01T01:00:00+01:00", "2020-01-01T00:00:00Z", True),
    ("TimestampLessThan", "2019-12-31T23:59:59.5Z", "2020-01-01T00:00:00Z", True),
    ("TimestampGreaterThan", "2020-01-02T00:00:00Z", "2020-01-01T00:00:00Z", True),
    ("TimestampLessThanEquals", "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
    ("TimestampGreaterThanEquals", "2019-01-01T00:00:00Z", "2020-01-01T00:00:00Z", False),
]


def test_every_operator_is_covered() -> None:
    assert {c[0] for c in CASES} | {"StringMatches"} == set(COMPARISONS)


@pytest.mark.parametrize(("op", "value", "operand", "expected"), CASES)
def test_comparison(op: str, value: Any, operand: Any, expected: bool) -> None:
    assert holds({"Variable": "$.v", op: operand}, {"v": value}) is expected


@pytest.mark.parametrize(("op", "value", "operand", "expected"), CASES)
def test_comparison_path_form(op: str, value: Any, operand: Any, expected: bool) -> None:
    rule = {"Variable": "$.v", f"{op}Path": "$.other"}
    assert holds(rule, {"v": value, "other": operand}) is expected


@pytest.mark.parametrize(
    ("op", "value", "operand"),
    [
        ("StringEquals", 1, "1"),
        ("NumericEquals", True, 1),
        ("NumericEquals", "1", 1),
        ("BooleanEquals", 1, True),
        ("TimestampEquals", "2020-01-01", "2020-01-01T00:00:00Z"),
        ("StringMatches", 5, "*"),
    ],
)
def test_a_comparison_of_the_wrong_type_is_false(op: str, value: Any, operand: Any) -> None:
    assert holds({"Variable": "$.v", op: operand}, {"v": value}) is False


def test_a_path_operand_of_the_wrong_type_is_false() -> None:
    rule = {"Variable": "$.v", "NumericEqualsPath": "$.o"}
    assert holds(rule, {"v": 1, "o": "1"}) is False


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("log-*.txt", "log-2024.txt", True),
        ("log-*.txt", "log-2024.csv", False),
        ("*", "", True),
        ("a*b*c", "aXXbYYc", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("*\\\\", "x\\", True),
        ("a.c", "abc", False),
    ],
)
def test_string_matches(pattern: str, text: str, expected: bool) -> None:
    assert matches(pattern, text) is expected
    assert holds({"Variable": "$.v", "StringMatches": pattern}, {"v": text}) is expected


@pytest.mark.parametrize(
    ("test", "value", "expected"),
    [
        ("IsNull", None, True),
        ("IsNull", 0, False),
        ("IsNumeric", 1.5, True),
        ("IsNumeric", True, False),
        ("IsNumeric", "1", False),
        ("IsString", "", True),
        ("IsString", None, False),
        ("IsBoolean", False, True),
        ("IsBoolean", 0, False),
        ("IsTimestamp", "2020-01-01T00:00:00Z", True),
        ("IsTimestamp", "2020-01-01T00:00:00.123456789+05:30", True),
        ("IsTimestamp", "2020-01-01", False),
        ("IsTimestamp", "2020-01-01T00:00:00", False),
    ],
)
def test_type_tests(test: str, value: Any, expected: bool) -> None:
    assert holds({"Variable": "$.v", test: True}, {"v": value}) is expected
    assert holds({"Variable": "$.v", test: False}, {"v": value}) is not expected


def test_is_present() -> None:
    assert holds({"Variable": "$.v", "IsPresent": True}, {"v": None}) is True
    assert holds({"Variable": "$.v", "IsPresent": True}, {}) is False
    assert holds({"Variable": "$.v", "IsPresent": False}, {}) is True


def test_and_or_not() -> None:
    present_and_big = {
        "And": [
            {"Variable": "$.v", "IsPresent": True},
            {"Variable": "$.v", "NumericGreaterThan": 10},
        ]
    }
    assert holds(present_and_big, {"v": 11}) is True
    assert holds(present_and_big, {"v": 1}) is False
    # And stops at the first false rule: the comparison on a missing $.v is never made.
    assert holds(present_and_big, {}) is False
    either = {"Or": [{"Variable": "$.a", "IsNull": True}, {"Variable": "$.b", "IsNull": True}]}
    assert holds(either, {"a": 1, "b": None}) is True
    assert holds({"Not": either}, {"a": 1, "b": None}) is False


def test_a_missing_variable_fails_with_states_runtime() -> None:
    result = choose({"Variable": "$.ghost", "StringEquals": "x"}, {})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_no_match_without_default_fails_with_no_choice_matched() -> None:
    result = choose({"Variable": "$.v", "IsNull": True}, {"v": 1}, default=False)
    assert (result.status, result.error) == ("FAILED", "States.NoChoiceMatched")


def test_the_first_matching_rule_wins_and_choice_applies_its_paths() -> None:
    machine = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "InputPath": "$.in",
                "OutputPath": "$.keep",
                "Choices": [
                    {"Variable": "$.n", "NumericGreaterThan": 0, "Next": "First"},
                    {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Second"},
                ],
            },
            "First": {"Type": "Pass", "ResultPath": "$.took", "Result": "first", "End": True},
            "Second": {"Type": "Pass", "ResultPath": "$.took", "Result": "second", "End": True},
        },
    }
    result = asl.run(machine, {"in": {"n": 5, "keep": {"k": 1}}})
    assert result.output == {"k": 1, "took": "first"}

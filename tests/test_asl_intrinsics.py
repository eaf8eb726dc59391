"""Intrinsic functions: every function of the specification but the random ones, and their
argument checks (refused arguments fail with ``States.Runtime``, as on AWS)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from stmtflow import asl
from stmtflow.asl._intrinsics import intrinsic_problem


def call(expr: str, input: Any = None) -> asl.AslResult:
    machine = {
        "StartAt": "S",
        "States": {"S": {"Type": "Pass", "Parameters": {"v.$": expr}, "End": True}},
    }
    return asl.run(machine, {} if input is None else input)


def value(expr: str, input: Any = None) -> Any:
    result = call(expr, input)
    assert result.status == "SUCCEEDED", result
    return result.output["v"]


@pytest.mark.parametrize(
    ("expr", "input", "expected"),
    [
        ("States.Format('Hello, {}!', $.n)", {"n": "Ann"}, "Hello, Ann!"),
        ("States.Format('{} {} {} {}', 1, 2.5, true, null)", None, "1 2.5 true null"),
        ("States.Format('{}', $.o)", {"o": {"a": [1, "x"]}}, "{a=[1, x]}"),
        ("States.Format('it\\'s \\{\\} {}', 'x')", None, "it's {} x"),
        ("States.Format($.t, 3)", {"t": "n={}"}, "n=3"),
        ("States.StringToJson($.s)", {"s": '{"a": [1, 2]}'}, {"a": [1, 2]}),
        ("States.JsonToString($.o)", {"o": {"a": [1, None]}}, '{"a":[1,null]}'),
        ("States.Array(1, 'two', $.x, States.Array())", {"x": True}, [1, "two", True, []]),
        ("States.ArrayPartition($.a, 2)", {"a": [1, 2, 3, 4, 5]}, [[1, 2], [3, 4], [5]]),
        ("States.ArrayContains($.a, $.v)", {"a": [1, {"k": [2]}], "v": {"k": [2]}}, True),
        ("States.ArrayContains($.a, true)", {"a": [1]}, False),
        ("States.ArrayRange(1, 9, 2)", None, [1, 3, 5, 7, 9]),
        ("States.ArrayRange(5, 1, -2)", None, [5, 3, 1]),
        ("States.ArrayGetItem($.a, 1)", {"a": ["x", "y"]}, "y"),
        ("States.ArrayLength($.a)", {"a": [1, 2, 3]}, 3),
        (
            "States.ArrayUnique($.a)",
            {"a": [1, 2, 1, "1", True, 1.0, {"k": 1}, {"k": 1}]},
            [1, 2, "1", True, {"k": 1}],
        ),
        ("States.Base64Encode('Data to encode')", None, "RGF0YSB0byBlbmNvZGU="),
        ("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", None, "Data to encode"),
        ("States.Hash('input data', 'SHA-256')", None, hashlib.sha256(b"input data").hexdigest()),
        ("States.Hash('x', 'MD5')", None, hashlib.md5(b"x").hexdigest()),
        (
            "States.JsonMerge($.a, $.b, false)",
            {"a": {"x": {"p": 1}, "y": 1}, "b": {"x": {"q": 2}}},
            {"x": {"q": 2}, "y": 1},
        ),
        ("States.MathAdd($.a, -3)", {"a": 10}, 7),
        ("States.MathAdd(2.5, 0)", None, 3),
        ("States.StringSplit('a,b;;c', ',;')", None, ["a", "b", "c"]),
        ("States.ArrayLength(States.StringSplit(States.Format('{}-{}', 1, 2), '-'))", None, 2),
        ("States.Format('{}', $$.State.Name)", None, "S"),
    ],
)
def test_intrinsic_values(expr: str, input: Any, expected: Any) -> None:
    assert value(expr, input) == expected


@pytest.mark.parametrize(
    ("expr", "input"),
    [
        ("States.Format('{} {}', 1)", None),
        ("States.Format('{}', 1, 2)", None),
        ("States.Format(1)", None),
        ("States.StringToJson('nope')", None),
        ("States.StringToJson(5)", None),
        ("States.ArrayPartition($.a, 0)", {"a": [1]}),
        ("States.ArrayPartition('x', 1)", None),
        ("States.ArrayRange(1, 10, 0)", None),
        ("States.ArrayRange(1, 2000, 1)", None),
        ("States.ArrayGetItem($.a, 5)", {"a": [1]}),
        ("States.ArrayLength($.s)", {"s": "text"}),
        ("States.Base64Encode(5)", None),
        ("States.Base64Decode('!!')", None),
        ("States.Hash($.d, 'SHA-1')", {"d": 12}),
        ("States.Hash('x', 'sha-1')", None),
        ("States.Hash($.d, 'MD5')", {"d": "x" * 10_001}),
        ("States.JsonMerge($.a, $.a, true)", {"a": {}}),
        ("States.JsonMerge($.a, 1, false)", {"a": {}}),
        ("States.MathAdd('1', 2)", None),
        ("States.MathAdd(true, 2)", None),
        ("States.StringSplit(1, ',')", None),
    ],
)
def test_arguments_the_function_refuses_fail_with_states_runtime(expr: str, input: Any) -> None:
    result = call(expr, input)
    assert (result.status, result.error) == ("FAILED", "States.Runtime"), result


def test_a_path_argument_that_matches_nothing_fails_with_states_runtime() -> None:
    assert call("States.Format('{}', $.ghost)").error == "States.Runtime"


@pytest.mark.parametrize(
    "expr",
    [
        "States.Nope(1)",
        "States.Format('a'",
        "States.Format('a') extra",
        "States.Format('unterminated)",
        "States.UUID()",
        "States.MathRandom(1, 2)",
        "States.Format(@)",
    ],
)
def test_malformed_or_unsupported_calls_are_definition_problems(expr: str) -> None:
    assert intrinsic_problem(expr) is not None
    with pytest.raises(asl.DefinitionError):
        call(expr)

"""Choice rules: comparisons, ``And``/``Or``/``Not``, type tests, and the choosing itself.

A rule compares the value at its ``Variable`` with a literal or, in the ``...Path`` form, with
the value at another Path. A comparison of the wrong types (``StringEquals`` on a number) is
false, not an error; a ``Variable`` (or a ``...Path`` operand) that matches nothing fails with
``States.Runtime``, except under ``IsPresent``, which exists to ask. Timestamps are RFC 3339
strings (``2024-05-01T12:00:00Z``) compared as instants. ``StringMatches`` takes ``*`` as
"any run of characters", ``\\*`` as a star and ``\\\\`` as a backslash.

Example:
    >>> choose({"Choices": [{"Variable": "$.n", "NumericGreaterThan": 3, "Next": "Big"}],
    ...         "Default": "Small"}, {"n": 5}, {})
    'Big'
    >>> matches("log-*.txt", "log-2024.txt"), matches("a\\\\*", "ab")
    (True, False)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

from stmtflow.asl._failure import AslFailure
from stmtflow.asl._paths import query

__all__ = ["COMPARISONS", "TESTS", "choose", "holds", "matches", "parse_timestamp"]

_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)


def parse_timestamp(value: Any) -> datetime | None:
    """The instant an RFC 3339 timestamp string names, or None if it is not one."""
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        return None
    text = value.upper().replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:  # Python reads at most 6 fractional digits
        digits = re.match(r"\d+", tail)
        assert digits is not None
        text = f"{head}.{digits.group()[:6].ljust(6, '0')}{tail[digits.end() :]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def matches(pattern: str, value: str) -> bool:
    """Whether ``value`` fits the ``StringMatches`` pattern."""
    return _pattern(pattern).fullmatch(value) is not None


def _strings(op: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    return lambda a, b: isinstance(a, str) and isinstance(b, str) and op(a, b)


def _numbers(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda a, b: _is_number(a) and _is_number(b) and op(a, b)


def _times(op: Callable[[datetime, datetime], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        ta, tb = parse_timestamp(a), parse_timestamp(b)
        return ta is not None and tb is not None and op(ta, tb)

    return compare


def _booleans(a: Any, b: Any) -> bool:
    return isinstance(a, bool) and isinstance(b, bool) and a == b


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


def _lt(a: Any, b: Any) -> bool:
    return bool(a < b)


def _gt(a: Any, b: Any) -> bool:
    return bool(a > b)


def _le(a: Any, b: Any) -> bool:
    return bool(a <= b)


def _ge(a: Any, b: Any) -> bool:
    return bool(a >= b)


_ORDERS = {"Equals": _eq, "LessThan": _lt, "GreaterThan": _gt}
_ORDERS |= {"LessThanEquals": _le, "GreaterThanEquals": _ge}

#: Every comparison operator (without its ``Path`` form) and how it compares two values.
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {}
for _suffix, _op in _ORDERS.items():
    COMPARISONS["String" + _suffix] = _strings(_op)
    COMPARISONS["Numeric" + _suffix] = _numbers(_op)
    COMPARISONS["Timestamp" + _suffix] = _times(_op)
COMPARISONS["BooleanEquals"] = _booleans
COMPARISONS["StringMatches"] = lambda a, b: isinstance(a, str) and matches(b, a)

#: The type tests, each true of the values it names.
TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsNumeric": _is_number,
    "IsString": lambda v: isinstance(v, str),
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsTimestamp": lambda v: parse_timestamp(v) is not None,
}


def holds(rule: dict[str, Any], data: Any, context: Any) -> bool:
    """Whether the Boolean expression ``rule`` is true of ``data``."""
    if "And" in rule:
        return all(holds(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(holds(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not holds(rule["Not"], data, context)
    variable = rule["Variable"]
    if "IsPresent" in rule:
        try:
            query(variable, data, context)
        except AslFailure:
            return rule["IsPresent"] is False
        return rule["IsPresent"] is True
    value = _operand(variable, data, context)
    for name, test in TESTS.items():
        if name in rule:
            return test(value) is rule[name]
    for name, compare in COMPARISONS.items():
        if name in rule:
            return compare(value, rule[name])
        if name + "Path" in rule:
            return compare(value, _operand(rule[name + "Path"], data, context))
    raise AslFailure("States.Runtime", f"a choice rule without a comparison: {rule}")


def _operand(path: str, data: Any, context: Any) -> Any:
    try:
        return query(path, data, context)
    except AslFailure:
        raise AslFailure(
            "States.Runtime", f"Invalid path {path!r}: the choice rule's path matches nothing"
        ) from None


def choose(spec: dict[str, Any], data: Any, context: Any) -> str:
    """The ``Next`` of the first rule that holds, else ``Default``, else a failure."""
    for rule in spec["Choices"]:
        if holds(rule, data, context):
            return str(rule["Next"])
    if "Default" in spec:
        return str(spec["Default"])
    raise AslFailure("States.NoChoiceMatched", "no choice rule matched and there is no Default")

"""Intrinsic functions: ``States.Format('{} items', $.n)`` and the rest, parsed and evaluated.

An intrinsic is the value of a ``key.$`` field of a payload template (Parameters,
ResultSelector, ItemSelector) that starts with ``States.``. Its arguments are string literals
in single quotes (``\\'``, ``\\{``, ``\\}`` and ``\\\\`` escape), numbers, ``true``/``false``/
``null``, Paths (``$.x``, ``$$.Execution.Input``) and other intrinsics. Every function of the
specification is here except the random ones (``States.UUID``, ``States.MathRandom``): a run
must be reproducible. A call whose arguments break the function's rules fails the execution
with ``States.Runtime``, as Step Functions reports it (the specification lists
``States.IntrinsicFailure`` for this, but executions on AWS, and the reference interpreter the
conformance cases were recorded with, fail with ``States.Runtime``, which no catcher takes); a
Path argument that matches nothing fails the same way, as every other Path does.

Example:
    >>> evaluate("States.Format('{} of {}', $.n, 'them')", {"n": 3})
    '3 of them'
    >>> evaluate("States.ArrayLength(States.Array(1, 'a', null))", {})
    3
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from stmtflow.asl._failure import AslFailure
from stmtflow.asl._paths import path_problem, query

__all__ = ["Call", "evaluate", "intrinsic_problem", "parse_intrinsic"]

INTRINSIC_FAILURE = "States.Runtime"
"""The error of refused arguments (the module docstring says why it is not IntrinsicFailure)."""
_LIMIT = 10_000  # characters, for the string functions the specification bounds


@dataclass(frozen=True)
class Literal:
    value: Any
    raw: str | None = None  # a string literal's text between its quotes, escapes kept


@dataclass(frozen=True)
class PathArg:
    path: str


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Literal | PathArg | Call, ...]


Arg = Literal | PathArg | Call


class _Parser:
    """A recursive-descent reader of one intrinsic call; errors are ValueError."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def fail(self, why: str) -> ValueError:
        return ValueError(f"{why} at character {self.i} of {self.text!r}")

    def skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def call(self) -> Call:
        m = re.compile(r"States\.[A-Za-z0-9]+").match(self.text, self.i)
        if not m:
            raise self.fail("expected a function name like States.Format")
        self.i = m.end()
        self.skip()
        if self.text[self.i : self.i + 1] != "(":
            raise self.fail("expected '('")
        self.i += 1
        args: list[Arg] = []
        self.skip()
        if self.text[self.i : self.i + 1] == ")":
            self.i += 1
            return Call(m.group(), ())
        while True:
            self.skip()
            args.append(self.arg())
            self.skip()
            c = self.text[self.i : self.i + 1]
            self.i += 1
            if c == ")":
                return Call(m.group(), tuple(args))
            if c != ",":
                self.i -= 1
                raise self.fail("expected ',' or ')'")

    def arg(self) -> Arg:
        rest = self.text[self.i :]
        if rest.startswith("'"):
            return self.string()
        if rest.startswith("States."):
            return self.call()
        if rest.startswith("$"):
            return self.path()
        m = re.match(r"-?\d+(\.\d+)?([eE][-+]?\d+)?|true\b|false\b|null\b", rest)
        if not m:
            raise self.fail("expected an argument")
        self.i += m.end()
        return Literal(json.loads(m.group()))

    def string(self) -> Literal:
        self.i += 1
        start, out = self.i, []
        while self.i < len(self.text):
            c = self.text[self.i]
            if c == "\\" and self.i + 1 < len(self.text):
                out.append(self.text[self.i + 1])
                self.i += 2
                continue
            if c == "'":
                raw = self.text[start : self.i]
                self.i += 1
                return Literal("".join(out), raw)
            out.append(c)
            self.i += 1
        raise self.fail("unterminated string literal")

    def path(self) -> PathArg:
        """A Path runs to the first ',' or ')' outside brackets, parentheses and quotes."""
        start, depth, quote = self.i, 0, ""
        while self.i < len(self.text):
            c = self.text[self.i]
            if quote:
                if c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c in "[(":
                depth += 1
            elif c in "])":
                if depth == 0:
                    break
                depth -= 1
            elif c == "," and depth == 0:
                break
            self.i += 1
        text = self.text[start : self.i].strip()
        problem = path_problem(text)
        if problem:
            raise ValueError(problem)
        return PathArg(text)


@lru_cache(maxsize=2048)
def parse_intrinsic(text: str) -> Call:
    """The call ``text`` spells; ValueError naming the problem if it spells none."""
    parser = _Parser(text.strip())
    call = parser.call()
    parser.skip()
    if parser.i != len(parser.text):
        raise parser.fail("unexpected text after the call")
    _check_names(call)
    return call


def _check_names(call: Call) -> None:
    if call.name not in FUNCTIONS:
        raise ValueError(f"unknown intrinsic function {call.name}")
    for arg in call.args:
        if isinstance(arg, Call):
            _check_names(arg)


def intrinsic_problem(text: str) -> str | None:
    """Why ``text`` is not a valid intrinsic call, or None."""
    try:
        parse_intrinsic(text)
    except ValueError as exc:
        return str(exc)
    return None


def evaluate(text: str, data: Any, context: Any = None) -> Any:
    """The value of the intrinsic call ``text`` over ``data`` and the context object."""
    try:
        call = parse_intrinsic(text)
    except ValueError as exc:
        raise AslFailure(INTRINSIC_FAILURE, str(exc)) from None
    return _eval(call, data, context)


def _eval(call: Call, data: Any, context: Any) -> Any:
    values: list[Any] = []
    for arg in call.args:
        if isinstance(arg, Literal):
            values.append(arg.value)
        elif isinstance(arg, PathArg):
            values.append(query(arg.path, data, context))
        else:
            values.append(_eval(arg, data, context))
    fn = FUNCTIONS[call.name]
    if call.name == "States.Format":
        first = call.args[0] if call.args else None
        raw = first.raw if isinstance(first, Literal) else None
        return _format(values, raw)
    return fn(values)


def _fail(why: str) -> AslFailure:
    return AslFailure(INTRINSIC_FAILURE, why)


def _count(values: list[Any], n: int, name: str) -> None:
    if len(values) != n:
        raise _fail(f"{name} takes {n} argument(s), got {len(values)}")


def _kind(value: Any, want: type | tuple[type, ...], what: str, name: str) -> None:
    if isinstance(value, bool) and bool not in (want if isinstance(want, tuple) else (want,)):
        raise _fail(f"{name}: {what} must not be a boolean, got {value!r}")
    if not isinstance(value, want):
        raise _fail(f"{name}: {what} has the wrong type: {json.dumps(value)}")


def _integer(value: Any, what: str, name: str) -> int:
    _kind(value, (int, float), what, name)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(f"{name}: {what} must be finite")
        return math.floor(value + 0.5)  # halves round up: 2.5 -> 3, -2.5 -> -2
    return int(value)


def _text(value: Any) -> str:
    """How States.Format writes a value into its template."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_text(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _format(values: list[Any], raw: str | None) -> str:
    if not values:
        raise _fail("States.Format takes at least one argument")
    template = values[0]
    if not isinstance(template, str):
        raise _fail("States.Format: the template must be a string")
    # Placeholders are the unescaped '{}' of the template's source text.
    source = raw if raw is not None else template
    pieces: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(source):
        c = source[i]
        if raw is not None and c == "\\" and i + 1 < len(source):
            buf.append(source[i + 1])
            i += 2
        elif source.startswith("{}", i):
            pieces.append("".join(buf))
            buf = []
            i += 2
        else:
            buf.append(c)
            i += 1
    pieces.append("".join(buf))
    args = values[1:]
    if len(args) != len(pieces) - 1:
        raise _fail(
            f"States.Format: the template has {len(pieces) - 1} placeholder(s) "
            f"but {len(args)} value(s) were given"
        )
    out = [pieces[0]]
    for arg, piece in zip(args, pieces[1:], strict=True):
        out += [_text(arg), piece]
    return "".join(out)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``true != 1``."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) or (
        _number(a) and _number(b) and a == b
    )


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _array(values: list[Any]) -> list[Any]:
    return list(values)


def _array_partition(values: list[Any]) -> list[Any]:
    _count(values, 2, "States.ArrayPartition")
    arr, size = values
    _kind(arr, list, "the array", "States.ArrayPartition")
    n = _integer(size, "the chunk size", "States.ArrayPartition")
    if n <= 0:
        raise _fail(f"States.ArrayPartition: the chunk size must be positive, got {size}")
    return [arr[i : i + n] for i in range(0, len(arr), n)]


def _array_contains(values: list[Any]) -> bool:
    _count(values, 2, "States.ArrayContains")
    _kind(values[0], list, "the array", "States.ArrayContains")
    return any(_same(item, values[1]) for item in values[0])


def _array_range(values: list[Any]) -> list[int]:
    _count(values, 3, "States.ArrayRange")
    start, end, step = (_integer(v, "an argument", "States.ArrayRange") for v in values)
    if step == 0:
        raise _fail("States.ArrayRange: the step must not be 0")
    out = list(range(start, end + (1 if step > 0 else -1), step))
    if len(out) > 1000:
        raise _fail(f"States.ArrayRange: {len(out)} items, more than the 1000 allowed")
    return out


def _array_get_item(values: list[Any]) -> Any:
    _count(values, 2, "States.ArrayGetItem")
    arr, index = values
    _kind(arr, list, "the array", "States.ArrayGetItem")
    i = _integer(index, "the index", "States.ArrayGetItem")
    if not 0 <= i < len(arr):
        raise _fail(f"States.ArrayGetItem: index {i} is out of bounds (length {len(arr)})")
    return arr[i]


def _array_length(values: list[Any]) -> int:
    _count(values, 1, "States.ArrayLength")
    _kind(values[0], list, "the array", "States.ArrayLength")
    return len(values[0])


def _array_unique(values: list[Any]) -> list[Any]:
    _count(values, 1, "States.ArrayUnique")
    _kind(values[0], list, "the array", "States.ArrayUnique")
    out: list[Any] = []
    for item in values[0]:
        if not any(_same(item, seen) for seen in out):
            out.append(item)
    return out


def _bounded_string(value: Any, what: str, name: str) -> str:
    _kind(value, str, what, name)
    if len(value) > _LIMIT:
        raise _fail(f"{name}: {what} is longer than {_LIMIT} characters")
    return str(value)


def _base64_encode(values: list[Any]) -> str:
    _count(values, 1, "States.Base64Encode")
    text = _bounded_string(values[0], "the string", "States.Base64Encode")
    return base64.b64encode(text.encode()).decode()


def _base64_decode(values: list[Any]) -> str:
    _count(values, 1, "States.Base64Decode")
    text = _bounded_string(values[0], "the string", "States.Base64Decode")
    try:
        return base64.b64decode(text.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _fail(f"States.Base64Decode: {text!r} is not base64 text ({exc})") from None


_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384"}
_HASHES["SHA-512"] = "sha512"


def _hash(values: list[Any]) -> str:
    _count(values, 2, "States.Hash")
    data, algorithm = values
    text = _bounded_string(data, "the data", "States.Hash")
    if algorithm not in _HASHES:
        raise _fail(f"States.Hash: unknown algorithm {algorithm!r}, expected one of {_HASHES}")
    return hashlib.new(_HASHES[algorithm], text.encode()).hexdigest()


def _json_merge(values: list[Any]) -> dict[str, Any]:
    _count(values, 3, "States.JsonMerge")
    a, b, deep = values
    _kind(a, dict, "the first object", "States.JsonMerge")
    _kind(b, dict, "the second object", "States.JsonMerge")
    if deep is not False:
        raise _fail("States.JsonMerge: only the shallow merge (false) is supported")
    return {**a, **b}


def _string_to_json(values: list[Any]) -> Any:
    _count(values, 1, "States.StringToJson")
    _kind(values[0], str, "the string", "States.StringToJson")
    try:
        return json.loads(values[0])
    except ValueError as exc:
        raise _fail(f"States.StringToJson: not JSON text ({exc})") from None


def _json_to_string(values: list[Any]) -> str:
    _count(values, 1, "States.JsonToString")
    return json.dumps(values[0], separators=(",", ":"))


def _math_add(values: list[Any]) -> int:
    _count(values, 2, "States.MathAdd")
    a, b = (_integer(v, "a value", "States.MathAdd") for v in values)
    return a + b


def _string_split(values: list[Any]) -> list[str]:
    _count(values, 2, "States.StringSplit")
    text, delimiters = values
    _kind(text, str, "the string", "States.StringSplit")
    _kind(delimiters, str, "the delimiter", "States.StringSplit")
    if not delimiters:  # no delimiter: every character on its own
        return list(text)
    pattern = "|".join(re.escape(c) for c in delimiters)
    return [part for part in re.split(pattern, text) if part]


FUNCTIONS: dict[str, Callable[[list[Any]], Any]] = {
    "States.Format": lambda values: _format(values, None),
    "States.StringToJson": _string_to_json,
    "States.JsonToString": _json_to_string,
    "States.Array": _array,
    "States.ArrayPartition": _array_partition,
    "States.ArrayContains": _array_contains,
    "States.ArrayRange": _array_range,
    "States.ArrayGetItem": _array_get_item,
    "States.ArrayLength": _array_length,
    "States.ArrayUnique": _array_unique,
    "States.Base64Encode": _base64_encode,
    "States.Base64Decode": _base64_decode,
    "States.Hash": _hash,
    "States.JsonMerge": _json_merge,
    "States.MathAdd": _math_add,
    "States.StringSplit": _string_split,
}

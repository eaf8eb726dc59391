"""JSONPath in ASL: Paths (which read, maybe many values) and Reference Paths (which name one).

The specification lets a Path be any JSONPath (``$.items[*].price``, filters, slices) and a
Reference Path only a chain of fields and indexes (``$.a.b[0]``), because ``ResultPath`` must
name the one place it writes to. Parsing is jsonpath-ng's (its ``ext`` grammar, which has
filters); this module only decides what the ASL makes of a parse:

- a *definite* path (fields and single non-negative indexes only) yields its one value, or
  fails with ``States.Runtime`` when nothing is there;
- any other path (wildcards, filters, slices, a negative index counting from the end) yields
  the list of what it matched (maybe empty);
- a path starting ``$$`` reads the context object instead of the state's input.

Example:
    >>> query("$.a[1]", {"a": [10, 20]})
    20
    >>> query("$.a[*].n", {"a": [{"n": 1}, {"n": 2}]})
    [1, 2]
    >>> reference_steps("$.a['b c'][2]")
    ['a', 'b c', 2]
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.ext.parser import parse
from jsonpath_ng.jsonpath import Child, Fields, Index, Root

from stmtflow.asl._failure import AslFailure

__all__ = ["is_path", "path_problem", "query", "reference_problem", "reference_steps"]

Step = str | int


@lru_cache(maxsize=4096)
def _parse(text: str) -> JSONPath:
    return parse(text)


@lru_cache(maxsize=4096)
def _steps(text: str) -> tuple[Step, ...] | None:
    """The fields and indexes of a definite path, or None when the path may match many."""
    out: list[Step] = []

    def walk(node: Any) -> bool:
        if isinstance(node, Root):
            return True
        if isinstance(node, Child):
            return walk(node.left) and walk(node.right)
        if isinstance(node, Fields) and len(node.fields) == 1 and node.fields[0] != "*":
            out.append(node.fields[0])
            return True
        if isinstance(node, Index) and len(node.indices) == 1 and node.indices[0] >= 0:
            out.append(node.indices[0])
            return True
        return False

    return tuple(out) if walk(_parse(text)) else None


def is_path(text: object) -> bool:
    """Whether ``text`` is a string that parses as a JSONPath starting with ``$``."""
    return isinstance(text, str) and path_problem(text) is None


def path_problem(text: str) -> str | None:
    """Why ``text`` is not a valid Path (``$`` or ``$$`` first, then JSONPath), or None."""
    body = text[1:] if text.startswith("$$") else text
    if not body.startswith("$"):
        return f"{text!r} does not start with '$'"
    try:
        _parse(body)
    except Exception as exc:
        return f"{text!r} is not a valid JSONPath ({exc})"
    return None


def reference_problem(text: str) -> str | None:
    """Why ``text`` is not a Reference Path (fields and single indexes from ``$``), or None."""
    problem = path_problem(text)
    if problem is not None:
        return problem
    if text.startswith("$$") or _steps(text) is None:
        return f"{text!r} is not a reference path (only fields and single indexes are allowed)"
    return None


def reference_steps(text: str) -> list[Step]:
    """The fields and indexes a Reference Path walks through."""
    steps = _steps(text)
    if steps is None:
        raise ValueError(f"{text!r} is not a reference path")
    return list(steps)


def query(text: str, data: Any, context: Any = None) -> Any:
    """The value at Path ``text`` in ``data`` (``$$...`` reads ``context``).

    A definite path that matches nothing fails with ``States.Runtime``.
    """
    if text.startswith("$$"):
        text, data = text[1:], context
    steps = _steps(text)
    if steps is not None:
        value = data
        for step in steps:
            if isinstance(step, int):
                if not isinstance(value, list) or step >= len(value):
                    raise _missing(text)
            elif not isinstance(value, dict) or step not in value:
                raise _missing(text)
            value = value[step]
        return value
    return [match.value for match in _parse(text).find(data)]


def _missing(text: str) -> AslFailure:
    return AslFailure("States.Runtime", f"Invalid path {text!r}: no results")

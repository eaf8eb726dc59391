"""Small checks the statement kinds share in their `Kind.problems` (names, conditions, callables).

Each returns a list of problem texts (empty when fine), so a kind adds them up.
"""

from __future__ import annotations

import inspect
import reprlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from stmtflow.dsl._kind import kind_of

__all__ = ["callable_problems", "cond_problems", "name_problems", "what"]


def name_problems(name: object, what: str = "name") -> list[str]:
    """``name`` must be a non-empty string."""
    if isinstance(name, str) and name:
        return []
    return [f"{what} must be a non-empty string, got {name!r}"]


def cond_problems(cond: object) -> list[str]:
    """A condition must be a bool or a zero-argument callable."""
    if isinstance(cond, bool):
        return []
    if callable(cond):
        return callable_problems("condition", cond, required=True)
    return [
        f"condition must be a bool or a zero-argument callable, got {what(cond)} "
        "(wrap an eager value in bool(...))"
    ]


def callable_problems(name: str, fn: object, *, required: bool) -> list[str]:
    """``fn`` must be callable with no arguments (None allowed unless ``required``)."""
    if fn is None and not required:
        return []
    if not callable(fn):
        return [f"{name} must be a zero-argument callable, got {what(fn)}"]
    if not _takes_no_arguments(fn):
        return [f"{name} must take no arguments, but {what(fn)} requires some"]
    return []


def _takes_no_arguments(fn: Callable[..., Any]) -> bool:
    try:
        inspect.signature(fn).bind()
    except TypeError:
        return False
    except ValueError:  # no signature available (some builtins): give it the benefit of doubt
        return True
    return True


def what(value: object) -> str:
    """A short description of a value for a message: its kind and a clipped repr."""
    kind = kind_of(value)
    if kind is not None and kind.labelled:
        return kind.title(value)
    if inspect.isfunction(value) or inspect.ismethod(value):
        return f"function {value.__qualname__}"
    if isinstance(value, timedelta):
        return f"timedelta {value if value >= timedelta(0) else f'-{-value}'}"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} (pass statements as separate arguments, or wrap in S())"
    return f"{type(value).__name__} {reprlib.repr(value)}"

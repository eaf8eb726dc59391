"""Threads: `Go` starts one running a body, `Return` ends the current one.

A ``Go`` may give its thread an ``arg`` (JSON, evaluated when the thread starts and kept on the
thread) and a ``group`` (a set of threads a `Join` waits on). Its body is a block, or a callable
``arg -> Section`` called with the thread's own ``arg`` whenever the body is needed, so threads
started from one ``Go`` in a loop each keep their own value however often ``definition()`` is
rebuilt.

Example:
    >>> from stmtflow.dsl import Step
    >>> Go("remind", Step("send", print), id="remind-1").body.body[0].name
    'send'
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from stmtflow.dsl._checks import callable_problems, name_problems, what
from stmtflow.dsl._kind import RETURNED, Cursor, Drawing, Ended, Exit, Kind, Site, register
from stmtflow.dsl._section import Section
from stmtflow.errors import ExecutionError
from stmtflow.state import MAIN_THREAD

if TYPE_CHECKING:
    from stmtflow.dsl._statements import Statement

__all__ = ["Go", "GoArg", "GoBody", "GoId", "Return", "json_value", "one_argument_problems"]

GoId: TypeAlias = str | Callable[[], str] | None
"""A thread id for ``Go``: a string, a zero-argument callable returning one, or None (the name)."""

GoBody: TypeAlias = "Section | Statement | Callable[[Any], Section]"
"""What a ``Go`` runs: a block (or one statement), or a callable ``arg -> Section``."""

GoArg: TypeAlias = Any
"""A thread's argument: a JSON-ready value, or a zero-argument callable returning one."""


@dataclass(frozen=True, slots=True, init=False)
class Go:
    """Start a thread running ``body``; the parent goes on until it blocks.

    ``id`` tells apart threads started from the same ``Go`` (in a loop); it defaults to ``name``.
    ``arg`` (a JSON-ready value, or a zero-argument callable evaluated when the thread starts)
    is kept on the thread; a callable ``body`` is called with it whenever the thread's body is
    needed. ``group`` puts the thread in a named group for `Join`.

    Example:
        >>> from stmtflow.dsl import S, Step
        >>> go = Go("ask", lambda who: S(Step("mail", print)), id="ask-a", arg="a", group="asks")
        >>> go.name, go.group, callable(go.body)
        ('ask', 'asks', True)
    """

    name: str
    body: Section | Callable[[Any], Section]
    id: GoId = field(compare=False, repr=False)
    arg: GoArg = field(compare=False, repr=False)
    group: str | None

    def __init__(
        self,
        name: str,
        body: Section | Statement | Callable[[Any], Section],
        *,
        id: GoId = None,
        arg: GoArg = None,
        group: str | None = None,
    ) -> None:
        keep = isinstance(body, Section) or (callable(body) and not _is_statement(body))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "body", body if keep else Section((body,)))  # type: ignore[arg-type]
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "arg", arg)
        object.__setattr__(self, "group", group)


def _is_statement(value: object) -> bool:
    from stmtflow.dsl._kind import kind_of

    return kind_of(value) is not None


@dataclass(frozen=True, slots=True)
class Return:
    """End the current thread; in the main thread, finish the workflow."""


class GoKind(Kind[Go]):
    statement = Go
    starts_thread = True

    def names(self, stmt: Go) -> list[str]:
        return [stmt.name]

    def children(self, stmt: Go) -> tuple[Any, ...]:
        return (stmt.body,) if isinstance(stmt.body, Section) else ()

    def body_fn(self, stmt: Go) -> Callable[[Any], Any] | None:
        return None if isinstance(stmt.body, Section) else stmt.body

    def groups(self, stmt: Go) -> list[str]:
        return [stmt.group] if isinstance(stmt.group, str) and stmt.group else []

    def child_path(self, stmt: Go, index: int, kid: object, path: str) -> str:
        return f"{path}.Go({stmt.name!r})"

    def problems(self, stmt: Go, site: Site) -> list[str]:
        problems = name_problems(stmt.name) + _id_problems(stmt)
        if not isinstance(stmt.body, Section):
            problems += one_argument_problems("body", stmt.body)
        if stmt.group is not None:
            problems += name_problems(stmt.group, what="group")
        if callable(stmt.arg):
            problems += callable_problems("arg", stmt.arg, required=True)
        else:
            problems += _json_problems("arg", stmt.arg)
        return problems

    def what_runs(self, stmt: Go) -> str:
        return f"the id or arg of Go {stmt.name!r}"

    def enter(self, stmt: Go, cursor: Cursor) -> None:
        arg = stmt.arg() if callable(stmt.arg) else stmt.arg
        where = f"Go {stmt.name!r}"
        cursor.spawn(
            stmt, thread_id(stmt), arg=json_value(arg, f"the arg of {where}"), group=stmt.group
        )

    def json(self, stmt: Go, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        go_id = "lazy" if callable(stmt.id) else stmt.id
        body: Any = (
            [dump(kid) for kid in stmt.body.body] if isinstance(stmt.body, Section) else "lazy"
        )
        out = {"type": self.label, "name": stmt.name, "id": go_id, "body": body}
        if stmt.arg is not None:  # keys only when used: older snapshots stay as they were
            out["arg"] = "lazy" if callable(stmt.arg) else True
        if stmt.group is not None:
            out["group"] = stmt.group
        return out

    def draw(self, stmt: Go, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        group = "" if stmt.group is None else f"\ngroup {stmt.group}"
        head = drawing.box(entry, f"Go {stmt.name}{group}", "go", stmt.name)
        ident = "" if stmt.id is None else f" (id: {'lazy' if callable(stmt.id) else stmt.id})"
        if isinstance(stmt.body, Section):
            drawing.lane(head, f"thread {stmt.name}{ident}", (0,), stmt.name)
        else:
            drawing.built_lane(head, f"thread {stmt.name}{ident}", "body(arg)", stmt.name)
        return [Exit(head)]


def thread_id(go: Go) -> str:
    """The id of the thread ``go`` starts now: its ``id`` (called when lazy), else its name.

    Raises:
        ExecutionError: the id is not a non-empty string.
    """
    value: Any = go.id() if callable(go.id) else go.id
    if value is None:
        return go.name
    if not isinstance(value, str) or not value:
        raise ExecutionError(f"Go {go.name!r} needs a non-empty string id, got {value!r}")
    return value


def json_value(value: Any, what_: str) -> Any:
    """``value`` as it reads back from JSON (a tuple becomes a list), so a thread sees the same
    ``arg`` before and after its state is saved and loaded.

    Raises:
        TypeError: ``value`` is not JSON-ready (the program reports it naming the workflow,
            thread and statement).
    """
    if value is None or type(value) in (str, int, bool):
        return value
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what_} must be JSON-ready, got {what(value)}: {exc}") from exc


def _json_problems(name: str, value: object) -> list[str]:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return [f"{name} must be JSON-ready (or a zero-argument callable), got {what(value)}"]
    return []


def one_argument_problems(name: str, fn: object) -> list[str]:
    """``fn`` must be a callable taking one positional argument."""
    if not callable(fn):
        return [f"{name} must be a block or a callable taking one argument, got {what(fn)}"]
    try:
        inspect.signature(fn).bind(None)
    except TypeError:
        return [f"{name} must take exactly one argument, but {what(fn)} does not"]
    except ValueError:  # no signature available: give it the benefit of the doubt
        return []
    return []


def _id_problems(stmt: Go) -> list[str]:
    go_id = stmt.id
    if go_id is not None and not isinstance(go_id, str) and not callable(go_id):
        return [f"id must be a string, a zero-argument callable or None, got {what(go_id)}"]
    if callable(go_id):
        return callable_problems("id", go_id, required=True)
    if go_id == "":
        return ["id must not be empty (leave it out to use the name)"]
    if (stmt.name if go_id is None else go_id) == MAIN_THREAD:
        return [f"thread id {MAIN_THREAD!r} is reserved for the main thread"]
    return []


class ReturnKind(Kind[Return]):
    statement = Return

    def enter(self, stmt: Return, cursor: Cursor) -> Ended:
        return RETURNED

    def draw(self, stmt: Return, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        drawing.box(entry, "Return", "end")
        return []


register(GoKind())
register(ReturnKind())

"""Threads: `Go` starts one running a body, `Return` ends the current one.

Example:
    >>> from stmtflow.dsl import Step
    >>> Go("remind", Step("send", print), id="remind-1").body.body[0].name
    'send'
"""

from __future__ import annotations

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

__all__ = ["Go", "GoId", "Return"]

GoId: TypeAlias = str | Callable[[], str] | None
"""A thread id for ``Go``: a string, a zero-argument callable returning one, or None (the name)."""


@dataclass(frozen=True, slots=True, init=False)
class Go:
    """Start a thread running ``body``; the parent goes on until it blocks.

    ``id`` tells apart threads started from the same ``Go`` (in a loop); it defaults to ``name``.

    Example:
        >>> from stmtflow.dsl import Step
        >>> Go("remind", Step("send", print)).name
        'remind'
    """

    name: str
    body: Section
    id: GoId = field(compare=False, repr=False)

    def __init__(self, name: str, body: Section | Statement, *, id: GoId = None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "body", body if isinstance(body, Section) else Section((body,)))
        object.__setattr__(self, "id", id)


@dataclass(frozen=True, slots=True)
class Return:
    """End the current thread; in the main thread, finish the workflow."""


class GoKind(Kind[Go]):
    statement = Go
    starts_thread = True

    def names(self, stmt: Go) -> list[str]:
        return [stmt.name]

    def children(self, stmt: Go) -> tuple[Any, ...]:
        return (stmt.body,)

    def child_path(self, stmt: Go, index: int, kid: object, path: str) -> str:
        return f"{path}.Go({stmt.name!r})"

    def problems(self, stmt: Go, site: Site) -> list[str]:
        return name_problems(stmt.name) + _id_problems(stmt)

    def what_runs(self, stmt: Go) -> str:
        return f"the id of Go {stmt.name!r}"

    def enter(self, stmt: Go, cursor: Cursor) -> None:
        cursor.spawn(stmt, thread_id(stmt))

    def json(self, stmt: Go, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        go_id = "lazy" if callable(stmt.id) else stmt.id
        body = [dump(kid) for kid in stmt.body.body]
        return {"type": self.label, "name": stmt.name, "id": go_id, "body": body}

    def draw(self, stmt: Go, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        head = drawing.box(entry, f"Go {stmt.name}", "go", stmt.name)
        ident = "" if stmt.id is None else f" (id: {'lazy' if callable(stmt.id) else stmt.id})"
        drawing.lane(head, f"thread {stmt.name}{ident}", (0,), stmt.name)
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

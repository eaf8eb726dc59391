"""``S(...)`` / `Section`: a block whose statements run in order.

Example:
    >>> from stmtflow.dsl import Step
    >>> S(Step("a", print), Step("b", print)).body[1].name
    'b'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stmtflow.dsl._kind import Cursor, Drawing, Exit, Kind, register

if TYPE_CHECKING:
    from stmtflow.dsl._statements import Statement

__all__ = ["S", "Section"]


@dataclass(frozen=True, slots=True)
class Section:
    """A block: its statements run in order. Build one with ``S(*stmts)``."""

    body: tuple[Statement, ...] = ()


def S(*stmts: Statement) -> Section:
    """A block of statements run in order.

    Example:
        >>> from stmtflow.dsl import Step
        >>> len(S(Step("a", print), Step("b", print)).body)
        2
    """
    return Section(tuple(stmts))


def section(body: tuple[Any, ...]) -> Section:
    """The body of a container statement, from its constructor's ``*body`` arguments."""
    return Section(tuple(body))


class SectionKind(Kind[Section]):
    statement = Section
    labelled = False

    def children(self, stmt: Section) -> tuple[Any, ...]:
        return stmt.body

    def child_path(self, stmt: Section, index: int, kid: object, path: str) -> str:
        return f"{path}[{index}]"

    def enter(self, stmt: Section, cursor: Cursor) -> None:
        if stmt.body:
            cursor.into(0, stmt.body[0])

    def after(self, stmt: Section, index: int, cursor: Cursor) -> None:
        if index + 1 < len(stmt.body):
            cursor.into(index + 1, stmt.body[index + 1])

    def json(self, stmt: Section, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {"type": self.label, "body": [dump(kid) for kid in stmt.body]}

    def draw(self, stmt: Section, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        exits = entry
        for index in range(len(stmt.body)):
            exits = drawing.child((index,), exits)
        return exits


register(SectionKind())

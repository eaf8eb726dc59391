"""`Join`: wait until the threads of a group ended (all of them, the first, or N).

Example:
    >>> Join("quotes", "suppliers", until="any").until
    'any'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from stmtflow.dsl._checks import name_problems, what
from stmtflow.dsl._kind import Cursor, Drawing, Exit, Kind, Site, register
from stmtflow.state import Thread, ThreadStatus

__all__ = ["Join", "Until"]

Until: TypeAlias = Literal["all", "any"] | int
"""How many of a group's threads a `Join` waits for: all, any (the first), or a number."""


@dataclass(frozen=True, slots=True, init=False)
class Join:
    """Wait until the threads of ``group`` ended: ``"all"``, ``"any"`` or ``N`` of them.

    Threads of the group count once they end (reach the end of their body or a ``Return``, or
    are ended by another ``Join``), whether before or while the ``Join`` waits; a group with no
    live thread is joined at once. Once joined, the group's ended threads are forgotten (a later
    ``Join`` counts afresh) and, under ``"any"``/``N`` with ``cancel_rest``, the threads still
    alive are ended: their events torn down, their timers cancelled.

    Example:
        >>> j = Join("quotes", "suppliers", until=2, cancel_rest=False)
        >>> j.group, j.until, j.cancel_rest
        ('suppliers', 2, False)
    """

    name: str
    group: str
    until: Until
    cancel_rest: bool

    def __init__(
        self, name: str, group: str, *, until: Until = "all", cancel_rest: bool = True
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "until", until)
        object.__setattr__(self, "cancel_rest", cancel_rest)


def _needed(until: Until) -> int | None:
    """How many ended threads satisfy ``until`` (None: all of them)."""
    if until == "all":
        return None
    return 1 if until == "any" else int(until)


def _value_problems(stmt: Join) -> list[str]:
    problems = []
    until = stmt.until
    if not (until in ("all", "any") or (type(until) is int and until >= 1)):
        problems.append(f'until must be "all", "any" or an int of at least 1, got {what(until)}')
    if not isinstance(stmt.cancel_rest, bool):
        problems.append(f"cancel_rest must be a bool, got {what(stmt.cancel_rest)}")
    return problems


def _holds(stmt: Join, alive: int, ended: int) -> bool:
    """Whether the group is joined: no thread of it alive, or enough of them ended."""
    needed = _needed(stmt.until)
    return not alive or (needed is not None and ended >= needed)


class JoinKind(Kind[Join]):
    statement = Join
    rests = frozenset({ThreadStatus.RESUMING, ThreadStatus.WAITING_CONDITION})
    blocks = True

    def names(self, stmt: Join) -> list[str]:
        return [stmt.name]

    def joins(self, stmt: Join) -> list[str]:
        return [stmt.group] if isinstance(stmt.group, str) and stmt.group else []

    def problems(self, stmt: Join, site: Site) -> list[str]:
        problems = name_problems(stmt.name) + name_problems(stmt.group, what="group")
        return problems + _value_problems(stmt)

    def enter(self, stmt: Join, cursor: Cursor) -> Join | None:
        problems = _value_problems(stmt)  # values from the data are checked here
        if problems:
            raise cursor.fail(f"Join {stmt.name!r}: {'; '.join(problems)}")
        return self._check(stmt, cursor)

    def resume(self, stmt: Join, thread: Thread, cursor: Cursor) -> Join | None:
        """Woken because enough threads ended: it goes on (and ends the rest)."""
        return self._check(stmt, cursor)

    def ready(self, stmt: Join, thread: Thread, count: Callable[[str], tuple[int, int]]) -> bool:
        return _holds(stmt, *count(stmt.group))

    def _check(self, stmt: Join, cursor: Cursor) -> Join | None:
        if not _holds(stmt, *cursor.group_count(stmt.group)):
            return stmt  # rests here until enough threads ended
        cursor.close_group(stmt.group, end_rest=stmt.cancel_rest)
        return None

    def json(self, stmt: Join, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {
            "type": self.label,
            "name": stmt.name,
            "group": stmt.group,
            "until": stmt.until,
            "cancel_rest": stmt.cancel_rest,
        }

    def draw(self, stmt: Join, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        rest = ", end the rest" if stmt.cancel_rest and stmt.until != "all" else ""
        label = f"Join {stmt.name}\n{stmt.until} of group {stmt.group}{rest}"
        return [Exit(drawing.box(entry, label, "join", stmt.name))]


register(JoinKind())

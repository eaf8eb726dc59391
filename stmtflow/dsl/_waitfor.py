"""`WaitFor`: block until a condition holds (usually set by another thread or an event).

Example:
    >>> WaitFor("ready", lambda: True).name
    'ready'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stmtflow.dsl._branch import Cond
from stmtflow.dsl._checks import callable_problems, cond_problems, name_problems
from stmtflow.dsl._kind import Cursor, Drawing, Exit, Kind, Site, cond_value, register
from stmtflow.state import ThreadStatus

__all__ = ["WaitFor"]


@dataclass(frozen=True, slots=True)
class WaitFor:
    """Block until ``cond`` is true, then call ``handler()`` (no arguments) if given.

    Example:
        >>> WaitFor("ready", lambda: True, handler=print).handler is print
        True
    """

    name: str
    cond: Cond = field(compare=False, repr=False)
    handler: Callable[[], Any] | None = field(default=None, compare=False, repr=False)


class WaitForKind(Kind[WaitFor]):
    statement = WaitFor
    rests = frozenset({ThreadStatus.RESUMING, ThreadStatus.WAITING_CONDITION})
    blocks = True

    def names(self, stmt: WaitFor) -> list[str]:
        return [stmt.name]

    def problems(self, stmt: WaitFor, site: Site) -> list[str]:
        problems = name_problems(stmt.name) + cond_problems(stmt.cond)
        return problems + callable_problems("handler", stmt.handler, required=False)

    def enter(self, stmt: WaitFor, cursor: Cursor) -> WaitFor:
        return stmt

    def json(self, stmt: WaitFor, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {
            "type": self.label,
            "name": stmt.name,
            "cond": cond_value(stmt.cond),
            "handler": stmt.handler is not None,
        }

    def draw(self, stmt: WaitFor, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        label = f"WaitFor {stmt.name}\nuntil ({cond_value(stmt.cond)})"
        return [Exit(drawing.box(entry, label, "waitfor", stmt.name))]


register(WaitForKind())

"""Loops: `For` while a condition holds, left by `Break` and restarted by `Continue`.

Example:
    >>> from stmtflow.dsl import Step
    >>> For("poll", True, Step("check", print), Break()).body.body[1]
    Break()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stmtflow.dsl._branch import Cond
from stmtflow.dsl._checks import cond_problems, name_problems
from stmtflow.dsl._kind import (
    Cursor,
    Drawing,
    Exit,
    Kind,
    Loop,
    Site,
    cond_value,
    kind_of,
    register,
    truth,
    with_word,
)
from stmtflow.dsl._section import Section, section

if TYPE_CHECKING:
    from stmtflow.dsl._statements import Statement

__all__ = ["Break", "Continue", "For"]


@dataclass(frozen=True, slots=True, init=False)
class For:
    """Loop while ``cond``; each iteration must reach at least one step or wait.

    Example:
        >>> from stmtflow.dsl import Step
        >>> For("poll", True, Step("check", print)).name
        'poll'
    """

    name: str
    cond: Cond = field(compare=False, repr=False)
    body: Section

    def __init__(self, name: str, cond: Cond, *body: Statement) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "cond", cond)
        object.__setattr__(self, "body", section(body))


@dataclass(frozen=True, slots=True)
class Break:
    """Leave the innermost `For` at once."""


@dataclass(frozen=True, slots=True)
class Continue:
    """Start the next iteration of the innermost `For` at once (its condition is checked)."""


def _pauses(stmt: object) -> bool:
    """True when ``stmt`` holds a blocking statement on the same thread (not under a ``Go``)."""
    kind = kind_of(stmt)
    if kind is None:
        return False
    if kind.blocks:  # a ForEach starts threads, yet its own thread waits at it
        return True
    return not kind.starts_thread and any(_pauses(kid) for kid in kind.children(stmt))


def _starts_threads(stmt: object) -> bool:
    kind = kind_of(stmt)
    if kind is None:
        return False
    return kind.starts_thread or any(_starts_threads(kid) for kid in kind.children(stmt))


class ForKind(Kind[For]):
    statement = For
    loops = True

    def names(self, stmt: For) -> list[str]:
        return [stmt.name]

    def children(self, stmt: For) -> tuple[Any, ...]:
        return (stmt.body,)

    def child_path(self, stmt: For, index: int, kid: object, path: str) -> str:
        return f"{path}.For({stmt.name!r})"

    def problems(self, stmt: For, site: Site) -> list[str]:
        problems = name_problems(stmt.name) + cond_problems(stmt.cond)
        if not _pauses(stmt.body):
            note = " (a Go body runs on another thread and does not count)"
            problems.append(
                "its body holds no Step, Wait, Sleep or WaitFor, so an iteration could never "
                f"pause{note if _starts_threads(stmt.body) else ''}"
            )
        return problems

    def what_runs(self, stmt: For) -> str:
        return f"the condition of loop {stmt.name!r}"

    def enter(self, stmt: For, cursor: Cursor) -> None:
        self.iterate(stmt, cursor)

    def after(self, stmt: For, index: int, cursor: Cursor) -> None:
        self.iterate(stmt, cursor)

    def iterate(self, stmt: For, cursor: Cursor) -> None:
        """At the loop's head: start an iteration while the condition holds, else leave."""
        if not cursor.first_visit():
            raise cursor.fail(f"an iteration of loop {stmt.name!r} reached no step or wait")
        if truth(stmt.cond):
            cursor.into(0, stmt.body)

    def json(self, stmt: For, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        body = [dump(kid) for kid in stmt.body.body]
        return {"type": self.label, "name": stmt.name, "cond": cond_value(stmt.cond), "body": body}

    def draw(self, stmt: For, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        loop = Loop(drawing.box(entry, f"For {stmt.name}", "decision", stmt.name))
        arm = [Exit(loop.head, f"while ({cond_value(stmt.cond)})")]
        body = drawing.child((0,), arm, loop=loop)
        drawing.back(body, loop.head)
        return [Exit(loop.head, "done"), *loop.breaks]


def _outside_loop(label: str, site: Site) -> list[str]:
    if site.loop is not None:
        return []
    return [
        f"{label} must be inside a For of the same thread body"
        + (" (a Go body starts a new thread)" if site.thread is not None else "")
    ]


class BreakKind(Kind[Break]):
    statement = Break

    def problems(self, stmt: Break, site: Site) -> list[str]:
        return _outside_loop(self.label, site)

    def enter(self, stmt: Break, cursor: Cursor) -> None:
        cursor.unwind_to_loop()

    def draw(self, stmt: Break, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        if drawing.loop is None:
            return drawing.invalid(entry)
        drawing.loop.breaks.extend(with_word(entry, "break"))
        return []


class ContinueKind(Kind[Continue]):
    statement = Continue

    def problems(self, stmt: Continue, site: Site) -> list[str]:
        return _outside_loop(self.label, site)

    def enter(self, stmt: Continue, cursor: Cursor) -> None:
        FOR.iterate(cursor.unwind_to_loop(), cursor)

    def draw(self, stmt: Continue, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        if drawing.loop is None:
            return drawing.invalid(entry)
        drawing.back(with_word(entry, "continue"), drawing.loop.head)
        return []


FOR = ForKind()
register(FOR)
register(BreakKind())
register(ContinueKind())

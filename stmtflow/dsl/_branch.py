"""Branching: `If` (with ``.ElseIf``/``.Else``) and `Switch` over `Case`/`Default`.

Example:
    >>> from stmtflow.dsl import Step
    >>> stmt = If(False, Step("a", print)).ElseIf(True, Step("b", print)).Else()
    >>> len(stmt.branches), stmt.else_body
    (2, Section(body=()))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from stmtflow.dsl._checks import cond_problems
from stmtflow.dsl._kind import Cursor, Drawing, Exit, Kind, Site, cond_value, register, truth
from stmtflow.dsl._section import Section, section

if TYPE_CHECKING:
    from stmtflow.dsl._statements import Statement

__all__ = ["Branch", "Case", "Cond", "Default", "If", "Switch"]

Cond: TypeAlias = bool | Callable[[], bool]
"""A condition: a bool computed when ``definition()`` ran, or a zero-argument callable (lazy)."""


@dataclass(frozen=True, slots=True)
class Branch:
    """One arm of an `If`: its condition and body."""

    cond: Cond = field(compare=False, repr=False)
    body: Section


@dataclass(frozen=True, slots=True, init=False)
class If:
    """Branch on a condition; chain ``.ElseIf(cond, *body)`` and ``.Else(*body)``.

    Example:
        >>> from stmtflow.dsl import Step
        >>> If(True, Step("a", print)).Else(Step("b", print)).else_body.body[0].name
        'b'
    """

    branches: tuple[Branch, ...]
    else_body: Section | None

    def __init__(
        self,
        cond: Cond,
        *body: Statement,
        _branches: tuple[Branch, ...] = (),
        _else: Section | None = None,
    ) -> None:
        object.__setattr__(self, "branches", _branches or (Branch(cond, section(body)),))
        object.__setattr__(self, "else_body", _else)

    def ElseIf(self, cond: Cond, *body: Statement) -> If:
        """A further branch, tried when every earlier condition was false."""
        branches = (*self.branches, Branch(cond, section(body)))
        return If(False, _branches=branches, _else=self.else_body)

    def Else(self, *body: Statement) -> If:
        """The branch taken when no condition was true."""
        return If(False, _branches=self.branches, _else=section(body))


@dataclass(frozen=True, slots=True, init=False)
class Case:
    """One case of a `Switch`: runs its body when ``cond`` is the first true one."""

    cond: Cond = field(compare=False, repr=False)
    body: Section

    def __init__(self, cond: Cond, *body: Statement) -> None:
        object.__setattr__(self, "cond", cond)
        object.__setattr__(self, "body", section(body))


@dataclass(frozen=True, slots=True, init=False)
class Default:
    """The `Switch` case taken when no `Case` condition is true."""

    body: Section

    def __init__(self, *body: Statement) -> None:
        object.__setattr__(self, "body", section(body))


@dataclass(frozen=True, slots=True, init=False)
class Switch:
    """Multi-way branch: the first true `Case` runs, else the `Default` if there is one.

    Example:
        >>> from stmtflow.dsl import Step
        >>> choice = Switch(Case(False, Step("a", print)), Default(Step("b", print)))
        >>> choice.cases[1].body.body[0].name
        'b'
    """

    cases: tuple[Case | Default, ...]

    def __init__(self, *cases: Case | Default) -> None:
        object.__setattr__(self, "cases", tuple(cases))


def _body(body: Section, dump: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    return [dump(stmt) for stmt in body.body]


class IfKind(Kind[If]):
    statement = If

    def children(self, stmt: If) -> tuple[Any, ...]:
        bodies = tuple(branch.body for branch in stmt.branches)
        return bodies if stmt.else_body is None else (*bodies, stmt.else_body)

    def child_path(self, stmt: If, index: int, kid: object, path: str) -> str:
        if index == 0:
            return f"{path}.If"
        return f"{path}.Else" if index == len(stmt.branches) else f"{path}.ElseIf#{index}"

    def problems(self, stmt: If, site: Site) -> list[str]:
        return [problem for branch in stmt.branches for problem in cond_problems(branch.cond)]

    def what_runs(self, stmt: If) -> str:
        return "a condition of an If"

    def enter(self, stmt: If, cursor: Cursor) -> None:
        for index, branch in enumerate(stmt.branches):
            if truth(branch.cond):
                cursor.into(index, branch.body)
                return
        if stmt.else_body is not None:
            cursor.into(len(stmt.branches), stmt.else_body)

    def json(self, stmt: If, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        branches = [
            {"cond": cond_value(branch.cond), "body": _body(branch.body, dump)}
            for branch in stmt.branches
        ]
        orelse = None if stmt.else_body is None else _body(stmt.else_body, dump)
        return {"type": self.label, "branches": branches, "else": orelse}

    def draw(self, stmt: If, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        head = drawing.box(entry, "If", "decision")
        out = []
        for index, branch in enumerate(stmt.branches):
            word = "if" if index == 0 else "elif"
            out += drawing.child((index,), [Exit(head, f"{word} ({cond_value(branch.cond)})")])
        if stmt.else_body is None:
            return [*out, Exit(head, "else")]
        return out + drawing.child((len(stmt.branches),), [Exit(head, "else")])


class SwitchKind(Kind[Switch]):
    statement = Switch
    holds = (Case, Default)
    holds_message = "a Switch holds only Case and Default"
    expected = "a Case or Default"

    def children(self, stmt: Switch) -> tuple[Any, ...]:
        return stmt.cases

    def child_path(self, stmt: Switch, index: int, kid: object, path: str) -> str:
        if isinstance(kid, Case):
            return f"{path}.Case#{index + 1}"
        return f"{path}.Default" if isinstance(kid, Default) else f"{path}.cases[{index}]"

    def problems(self, stmt: Switch, site: Site) -> list[str]:
        defaults = [index for index, case in enumerate(stmt.cases) if isinstance(case, Default)]
        problems = []
        if len(defaults) > 1:
            problems.append(f"a Switch takes at most one Default, got {len(defaults)}")
        if defaults and any(isinstance(case, Case) for case in stmt.cases[defaults[0] + 1 :]):
            problems.append("a Case after the Default can never run; put the Default last")
        return problems

    def what_runs(self, stmt: Switch) -> str:
        return "a condition of a Switch"

    def enter(self, stmt: Switch, cursor: Cursor) -> None:
        default = None
        for index, case in enumerate(stmt.cases):
            if isinstance(case, Default):
                default = default if default is not None else index
            elif truth(case.cond):
                cursor.into(index, case)
                return
        if default is not None:
            cursor.into(default, stmt.cases[default])

    def json(self, stmt: Switch, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {"type": self.label, "cases": [dump(case) for case in stmt.cases]}

    def draw(self, stmt: Switch, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        head = drawing.box(entry, "Switch", "decision")
        out: list[Exit] = []
        for index, case in enumerate(stmt.cases):
            if isinstance(case, Case):
                arm = [Exit(head, f"case {index + 1} ({cond_value(case.cond)})")]
            elif isinstance(case, Default):
                arm = [Exit(head, "default")]
            else:
                out += drawing.child((index,), [Exit(head)])
                continue
            out += drawing.child((index, 0), arm)
        if not any(isinstance(case, Default) for case in stmt.cases):
            out.append(Exit(head, "no case"))
        return out


class CaseKind(Kind[Case]):
    statement = Case
    inside = Switch

    def children(self, stmt: Case) -> tuple[Any, ...]:
        return (stmt.body,)

    def problems(self, stmt: Case, site: Site) -> list[str]:
        return cond_problems(stmt.cond)

    def enter(self, stmt: Case, cursor: Cursor) -> None:
        cursor.into(0, stmt.body)

    def json(self, stmt: Case, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {"type": self.label, "cond": cond_value(stmt.cond), "body": _body(stmt.body, dump)}

    def draw(self, stmt: Case, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        return drawing.invalid(entry)  # a Switch draws its cases' bodies itself


class DefaultKind(Kind[Default]):
    statement = Default
    inside = Switch

    def children(self, stmt: Default) -> tuple[Any, ...]:
        return (stmt.body,)

    def enter(self, stmt: Default, cursor: Cursor) -> None:
        cursor.into(0, stmt.body)

    def json(self, stmt: Default, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {"type": self.label, "body": _body(stmt.body, dump)}

    def draw(self, stmt: Default, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        return drawing.invalid(entry)


register(IfKind())
register(SwitchKind())
register(CaseKind())
register(DefaultKind())

"""Failures: `Try` with its ``.Catch`` clauses, and `Compensate` (undo what the ``Try`` did).

A step inside a ``Try``'s body whose failure is final (no retry policy on the step: its one
attempt; else its attempts ran out or it raised a ``non_retryable`` error) moves the thread into
the first ``Catch`` that takes the error, instead of failing the workflow. ``errors`` is an
exception class, a tuple (or list) of classes, or error names: strings matched against the
exception's class name and the names of its base classes, bare or qualified with their module
(``"Exception"`` takes every ordinary error).

Example:
    >>> from stmtflow.dsl import Step
    >>> stmt = Try(Step("charge", print)).Catch("CardDeclined", Step("apologise", print))
    >>> [names(clause.errors) for clause in stmt.catches]
    [['CardDeclined']]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from stmtflow.dsl._checks import what
from stmtflow.dsl._kind import Cursor, Drawing, Exit, Kind, Site, register
from stmtflow.dsl._section import Section, section

if TYPE_CHECKING:
    from stmtflow.dsl._statements import Statement

__all__ = ["CatchClause", "Compensate", "ErrorSpec", "Try", "matches", "names"]

ErrorSpec: TypeAlias = type[BaseException] | str | tuple[type[BaseException] | str, ...]
"""What a ``Catch`` takes: an exception class, an error name, or a tuple of them."""


def _spec(errors: ErrorSpec | list[Any]) -> tuple[Any, ...]:
    return tuple(errors) if isinstance(errors, tuple | list) else (errors,)


def names(errors: tuple[Any, ...]) -> list[str]:
    """The errors a clause takes, as JSON and diagrams show them (class names)."""
    return [e if isinstance(e, str) else getattr(e, "__name__", repr(e)) for e in errors]


def matches(errors: tuple[Any, ...], error: BaseException) -> bool:
    """Whether ``error`` is one the clause takes: an instance of one of its classes, or an
    exception whose class or one of its bases has one of its names (the bare class name, or
    the qualified one: ``"TimeoutError"``, ``"builtins.TimeoutError"``)."""
    lineage: set[str] | None = None
    for spec in errors:
        if isinstance(spec, str):
            if lineage is None:
                lineage = {cls.__name__ for cls in type(error).__mro__}
                lineage.update(f"{c.__module__}.{c.__qualname__}" for c in type(error).__mro__)
            if spec in lineage:
                return True
        elif isinstance(error, spec):
            return True
    return False


@dataclass(frozen=True, slots=True)
class CatchClause:
    """One ``.Catch(errors, *body)`` of a `Try`: the errors it takes and its body."""

    errors: tuple[Any, ...]
    body: Section


@dataclass(frozen=True, slots=True, init=False)
class Try:
    """Run ``body``; a step's final failure in it moves the thread to the first matching catch.

    Chain ``.Catch(errors, *body)`` once per kind of error; the first that takes the error
    wins. The catch body sees the error through `current_error`. Data is as the last
    checkpoint left it (the failed action's changes are rolled back). Nested ``Try``s catch
    innermost first; an error raised in a catch body goes to the ``Try``s around this one.
    ``Break``, ``Continue`` and ``Return`` leave a ``Try`` as they would in Python.

    Example:
        >>> from stmtflow.dsl import Step
        >>> stmt = Try(Step("a", print)).Catch(ValueError, Step("b", print)).Catch(
        ...     ("TimeoutError", KeyError), Step("c", print))
        >>> len(stmt.catches), names(stmt.catches[1].errors)
        (2, ['TimeoutError', 'KeyError'])
    """

    body: Section
    catches: tuple[CatchClause, ...]

    def __init__(self, *body: Statement, _catches: tuple[CatchClause, ...] = ()) -> None:
        object.__setattr__(self, "body", section(body))
        object.__setattr__(self, "catches", _catches)

    def Catch(self, errors: ErrorSpec | list[Any], *body: Statement) -> Try:
        """A further clause, tried when no earlier one took the error."""
        clause = CatchClause(_spec(errors), section(body))
        return Try(*self.body.body, _catches=(*self.catches, clause))


@dataclass(frozen=True, slots=True)
class Compensate:
    """In a ``Catch`` body: run, latest first, the compensations of the steps this thread
    completed inside the enclosing ``Try``; the thread goes on once they all ran.

    Example:
        >>> from stmtflow.dsl import Step
        >>> Try(Step("book", print)).Catch(Exception, Compensate()).catches[0].body.body
        (Compensate(),)
    """


def _spec_problems(index: int, errors: tuple[Any, ...]) -> list[str]:
    where = f"Catch #{index}"
    if not errors:
        return [f"{where} takes no errors (give an exception class, a name or a tuple of them)"]
    problems = []
    for spec in errors:
        if isinstance(spec, str):
            if not spec:
                problems.append(f"{where}: an error name must not be empty")
        elif not (isinstance(spec, type) and issubclass(spec, BaseException)):
            problems.append(
                f"{where}: errors must be exception classes or error names, got {what(spec)}"
            )
    return problems


class TryKind(Kind[Try]):
    statement = Try
    guards = True

    def children(self, stmt: Try) -> tuple[Any, ...]:
        return (stmt.body, *(clause.body for clause in stmt.catches))

    def child_path(self, stmt: Try, index: int, kid: object, path: str) -> str:
        return f"{path}.Try" if index == 0 else f"{path}.Catch#{index}"

    def problems(self, stmt: Try, site: Site) -> list[str]:
        if not stmt.catches:
            return ["a Try needs at least one .Catch(errors, *body)"]
        return [
            problem
            for index, clause in enumerate(stmt.catches, 1)
            for problem in _spec_problems(index, clause.errors)
        ]

    def catches(self, stmt: Try, error: BaseException) -> int | None:
        for index, clause in enumerate(stmt.catches, 1):
            if matches(clause.errors, error):
                return index
        return None

    def enter(self, stmt: Try, cursor: Cursor) -> None:
        cursor.enter_try()
        cursor.into(0, stmt.body)

    def after(self, stmt: Try, index: int, cursor: Cursor) -> None:
        cursor.leave_try()

    def json(self, stmt: Try, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        catches = [
            {"errors": names(clause.errors), "body": [dump(kid) for kid in clause.body.body]}
            for clause in stmt.catches
        ]
        return {
            "type": self.label,
            "body": [dump(kid) for kid in stmt.body.body],
            "catches": catches,
        }

    def draw(self, stmt: Try, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        head = drawing.box(entry, "Try", "decision")
        out = drawing.child((0,), [Exit(head, "try")])
        for index, clause in enumerate(stmt.catches, 1):
            arm = [Exit(head, f"catch {' | '.join(names(clause.errors))}")]
            out += drawing.child((index,), arm)
        return out


class CompensateKind(Kind[Compensate]):
    statement = Compensate

    def problems(self, stmt: Compensate, site: Site) -> list[str]:
        if site.catch is not None:
            return []
        inside_go = " (a Go body starts a new thread)" if site.thread is not None else ""
        return [f"Compensate must be inside a Catch body of the same thread body{inside_go}"]

    def enter(self, stmt: Compensate, cursor: Cursor) -> None:
        cursor.compensate()

    def draw(self, stmt: Compensate, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        return [Exit(drawing.box(entry, "Compensate", "step"))]


register(TryKind())
register(CompensateKind())

"""The statement DSL: frozen values a workflow's ``definition()`` returns.

Statements carry no engine logic; the interpreter decides what each one does. Callables (actions,
lazy conditions, handlers) are kept out of equality and repr, so two definitions compare equal
when their shape and names do.

Example:
    >>> import stmtflow as sf
    >>> tree = sf.S(
    ...     sf.Step("hello", lambda: None),
    ...     sf.If(True, sf.Step("yes", lambda: None)).Else(sf.Step("no", lambda: None)),
    ... )
    >>> [type(s).__name__ for s in tree.body]
    ['Step', 'If']
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeAlias

from stmtflow.dsl._handlers import FunctionHandler, Handler, Timer

__all__ = [
    "Branch",
    "Break",
    "Case",
    "Cond",
    "Continue",
    "Default",
    "For",
    "Go",
    "GoId",
    "If",
    "On",
    "OnEvent",
    "RetryPolicy",
    "Return",
    "S",
    "Section",
    "Sleep",
    "Statement",
    "Step",
    "Switch",
    "Wait",
    "WaitFor",
]

Cond: TypeAlias = bool | Callable[[], bool]
"""A condition: a bool computed when ``definition()`` ran, or a zero-argument callable (lazy)."""

GoId: TypeAlias = str | Callable[[], str] | None
"""A thread id for ``Go``: a string, a zero-argument callable returning one, or None (the name)."""

Action: TypeAlias = Callable[[], Any] | Callable[[], Awaitable[Any]]


def _section(body: tuple[Any, ...]) -> Section:
    return Section(tuple(body))


@dataclass(frozen=True, slots=True)
class Section:
    """A block: its statements run in order. Build one with ``S(*stmts)``."""

    body: tuple[Statement, ...] = ()


def S(*stmts: Statement) -> Section:
    """A block of statements run in order.

    Example:
        >>> S(Step("a", print), Step("b", print)).body[1].name
        'b'
    """
    return Section(tuple(stmts))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed step is retried.

    A failed attempt is recorded on the thread with the time of the next try; ``resume`` returns
    normally, and the step runs again once ``now`` reaches that time. The wait before attempt
    ``n + 1`` is ``initial_interval * backoff_coefficient ** (n - 1)``, capped at ``max_interval``.
    When ``max_attempts`` are used up, or an exception of a ``non_retryable`` type is raised, the
    workflow is ``failed`` with the error kept in its state.

    Example:
        >>> RetryPolicy(max_attempts=5).interval(3)
        datetime.timedelta(seconds=4)
    """

    max_attempts: int = 3
    initial_interval: timedelta = timedelta(seconds=1)
    backoff_coefficient: float = 2.0
    max_interval: timedelta = timedelta(minutes=5)
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.max_attempts < 1:
            problems.append(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_interval < timedelta(0):
            problems.append("initial_interval must not be negative")
        if self.backoff_coefficient < 1:
            problems.append(f"backoff_coefficient must be >= 1, got {self.backoff_coefficient}")
        if self.max_interval < self.initial_interval:
            problems.append("max_interval must not be shorter than initial_interval")
        if problems:
            raise ValueError("invalid RetryPolicy: " + "; ".join(problems))
        object.__setattr__(self, "non_retryable", tuple(self.non_retryable))

    def interval(self, failed_attempts: int) -> timedelta:
        """The wait after ``failed_attempts`` failures (1 for the first) before the next try."""
        scaled = self.initial_interval * (self.backoff_coefficient ** max(failed_attempts - 1, 0))
        return min(scaled, self.max_interval)

    def is_retryable(self, error: BaseException) -> bool:
        """False when ``error`` is an instance of one of the ``non_retryable`` types."""
        return not isinstance(error, self.non_retryable)


@dataclass(frozen=True, slots=True)
class Step:
    """Run ``action()`` (plain or async). ``retry`` is a `RetryPolicy`, or None to raise at once.

    Example:
        >>> Step("charge", lambda: None, retry=RetryPolicy(max_attempts=5)).retry.max_attempts
        5
    """

    name: str
    action: Action = field(compare=False, repr=False)
    retry: RetryPolicy | None = field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class Branch:
    """One arm of an `If`: its condition and body."""

    cond: Cond = field(compare=False, repr=False)
    body: Section


@dataclass(frozen=True, slots=True, init=False)
class If:
    """Branch on a condition; chain ``.ElseIf(cond, *body)`` and ``.Else(*body)``.

    Example:
        >>> stmt = If(False, Step("a", print)).ElseIf(True, Step("b", print)).Else()
        >>> len(stmt.branches), stmt.else_body
        (2, Section(body=()))
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
        object.__setattr__(self, "branches", _branches or (Branch(cond, _section(body)),))
        object.__setattr__(self, "else_body", _else)

    def ElseIf(self, cond: Cond, *body: Statement) -> If:
        """A further branch, tried when every earlier condition was false."""
        branches = (*self.branches, Branch(cond, _section(body)))
        return If(False, _branches=branches, _else=self.else_body)

    def Else(self, *body: Statement) -> If:
        """The branch taken when no condition was true."""
        return If(False, _branches=self.branches, _else=_section(body))


@dataclass(frozen=True, slots=True, init=False)
class Case:
    """One case of a `Switch`: runs its body when ``cond`` is the first true one."""

    cond: Cond = field(compare=False, repr=False)
    body: Section

    def __init__(self, cond: Cond, *body: Statement) -> None:
        object.__setattr__(self, "cond", cond)
        object.__setattr__(self, "body", _section(body))


@dataclass(frozen=True, slots=True, init=False)
class Default:
    """The `Switch` case taken when no `Case` condition is true."""

    body: Section

    def __init__(self, *body: Statement) -> None:
        object.__setattr__(self, "body", _section(body))


@dataclass(frozen=True, slots=True, init=False)
class Switch:
    """Multi-way branch: the first true `Case` runs, else the `Default` if there is one.

    Example:
        >>> choice = Switch(Case(False, Step("a", print)), Default(Step("b", print)))
        >>> choice.cases[1].body.body[0].name
        'b'
    """

    cases: tuple[Case | Default, ...]

    def __init__(self, *cases: Case | Default) -> None:
        object.__setattr__(self, "cases", tuple(cases))


@dataclass(frozen=True, slots=True, init=False)
class For:
    """Loop while ``cond``; each iteration must reach at least one step or wait.

    Example:
        >>> For("poll", True, Step("check", print)).name
        'poll'
    """

    name: str
    cond: Cond = field(compare=False, repr=False)
    body: Section

    def __init__(self, name: str, cond: Cond, *body: Statement) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "cond", cond)
        object.__setattr__(self, "body", _section(body))


@dataclass(frozen=True, slots=True)
class Break:
    """Leave the innermost `For` at once."""


@dataclass(frozen=True, slots=True)
class Continue:
    """Start the next iteration of the innermost `For` at once (its condition is checked)."""


@dataclass(frozen=True, slots=True)
class Return:
    """End the current thread; in the main thread, finish the workflow."""


@dataclass(frozen=True, slots=True, init=False)
class Go:
    """Start a thread running ``body``; the parent goes on until it blocks.

    ``id`` tells apart threads started from the same ``Go`` (in a loop); it defaults to ``name``.

    Example:
        >>> Go("remind", Step("send", print), id="remind-1").body.body[0].name
        'send'
    """

    name: str
    body: Section
    id: GoId = field(compare=False, repr=False)

    def __init__(self, name: str, body: Section | Statement, *, id: GoId = None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "body", body if isinstance(body, Section) else Section((body,)))
        object.__setattr__(self, "id", id)


@dataclass(frozen=True, slots=True, init=False)
class On:
    """One event of a `Wait`: when ``event`` arrives, ``handler.handle`` runs, then ``body``."""

    event: str
    handler: Handler = field(compare=False, repr=False)
    body: Section

    def __init__(self, event: str, handler: Handler, *body: Statement) -> None:
        object.__setattr__(self, "event", event)
        object.__setattr__(self, "handler", handler)
        object.__setattr__(self, "body", _section(body))


def OnEvent(event: str, fn: Callable[..., Any], *body: Statement) -> On:
    """An `On` whose handler is ``FunctionHandler(fn)``: a typed function receiving the input.

    Example:
        >>> OnEvent("approved", lambda: None).handler.type
        'FunctionHandler'
    """
    return On(event, FunctionHandler(fn), *body)


@dataclass(frozen=True, slots=True, init=False)
class Wait:
    """Block until one of the events arrives, then run that event's body.

    Example:
        >>> Wait("answer", On("yes", Timer(seconds=1))).events[0].event
        'yes'
    """

    name: str
    events: tuple[On, ...]

    def __init__(self, name: str, *events: On) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "events", tuple(events))


@dataclass(frozen=True, slots=True)
class WaitFor:
    """Block until ``cond`` is true, then call ``handler()`` (no arguments) if given.

    Example:
        >>> WaitFor("ready", lambda: True).name
        'ready'
    """

    name: str
    cond: Cond = field(compare=False, repr=False)
    handler: Callable[[], Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Sleep:
    """A `Wait` with a single `Timer` event named ``f"{name}.timer"``, due ``duration`` later.

    Example:
        >>> Sleep("cool_off", timedelta(days=3)).event
        'cool_off.timer'
    """

    name: str
    duration: timedelta

    @property
    def event(self) -> str:
        """The timer event's name: the sleep's name followed by ``.timer``."""
        return f"{self.name}.timer"

    def as_wait(self) -> Wait:
        """The equivalent `Wait` the interpreter runs."""
        return Wait(self.name, On(self.event, Timer(seconds=self.duration.total_seconds())))


Statement: TypeAlias = (
    Section
    | Step
    | If
    | Switch
    | Case
    | Default
    | For
    | Break
    | Continue
    | Return
    | Go
    | Wait
    | On
    | WaitFor
    | Sleep
)
"""Every statement kind. ``Case``/``Default`` live only in a `Switch`, ``On`` only in a `Wait`."""

"""Waiting for events: `Wait` over `On`/`OnEvent` events, and `Sleep`, a `Wait` on one timer.

Example:
    >>> from datetime import timedelta
    >>> Wait("answer", On("yes", Timer(seconds=1))).events[0].event
    'yes'
    >>> Sleep("cool_off", timedelta(days=3)).events[0].event
    'cool_off.timer'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from stmtflow.dsl._checks import name_problems, what
from stmtflow.dsl._handlers import FunctionHandler, Handler, Timer, handler_type
from stmtflow.dsl._kind import (
    Cursor,
    Drawing,
    Exit,
    Kind,
    Site,
    duration_text,
    register,
    seconds,
)
from stmtflow.dsl._section import Section, section
from stmtflow.state import Thread, ThreadStatus

if TYPE_CHECKING:
    from stmtflow.dsl._statements import Statement

__all__ = ["On", "OnEvent", "Sleep", "Wait"]


@dataclass(frozen=True, slots=True, init=False)
class On:
    """One event of a `Wait`: when ``event`` arrives, ``handler.handle`` runs, then ``body``."""

    event: str
    handler: Handler = field(compare=False, repr=False)
    body: Section

    def __init__(self, event: str, handler: Handler, *body: Statement) -> None:
        object.__setattr__(self, "event", event)
        object.__setattr__(self, "handler", handler)
        object.__setattr__(self, "body", section(body))


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
        >>> Wait("answer", On("yes", Timer(seconds=1))).name
        'answer'
    """

    name: str
    events: tuple[On, ...]

    def __init__(self, name: str, *events: On) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "events", tuple(events))


@dataclass(frozen=True, slots=True, init=False)
class Sleep(Wait):
    """A `Wait` with a single `Timer` event named ``f"{name}.timer"``, due ``duration`` later.

    It *is* that `Wait`, so everything that runs, routes or checks waits treats it as one; only
    its checks, JSON and drawing say ``Sleep``.

    Example:
        >>> nap = Sleep("cool_off", timedelta(days=3))
        >>> nap.event, isinstance(nap, Wait)
        ('cool_off.timer', True)
    """

    duration: timedelta
    _timer: tuple[On, ...] | None = field(compare=False, repr=False)

    def __init__(self, name: str, duration: timedelta) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "duration", duration)
        object.__setattr__(self, "_timer", None)

    @property
    def event(self) -> str:
        """The timer event's name: the sleep's name followed by ``.timer``."""
        return f"{self.name}.timer"


def _sleep_events(self: Sleep) -> tuple[On, ...]:
    """A sleep's one timer event, built on first use: an eager definition is rebuilt after every
    step, and most rebuilds never look at a sleep. Empty while the duration is invalid (the
    definition check reports that)."""
    timer = self._timer
    if timer is None:
        duration = self.duration
        valid = isinstance(duration, timedelta) and duration >= timedelta(0)
        handler = Timer(seconds=duration.total_seconds()) if valid else None
        timer = () if handler is None else (On(self.event, handler),)
        object.__setattr__(self, "_timer", timer)
    return timer


# Attached after the class is made: dataclass(slots=True) drops class attributes named like a
# field (``events`` is the Wait's), so a property in the class body would not survive.
Sleep.events = property(_sleep_events)  # type: ignore[assignment, misc]


class WaitKind(Kind[Wait]):
    statement: ClassVar[type] = Wait
    rests = frozenset({ThreadStatus.RESUMING, ThreadStatus.WAITING_EVENT})
    blocks = True
    holds = (On,)
    holds_message = "a Wait holds only On events (On or OnEvent)"
    expected = "an On event"

    def names(self, stmt: Wait) -> list[str]:
        return [stmt.name]

    def children(self, stmt: Wait) -> tuple[Any, ...]:
        return stmt.events

    def child_path(self, stmt: Wait, index: int, kid: object, path: str) -> str:
        if isinstance(kid, On):
            return f"{path}.On({kid.event!r})"
        return f"{path}.events[{index}]"

    def problems(self, stmt: Wait, site: Site) -> list[str]:
        problems = name_problems(stmt.name)
        if not stmt.events:
            problems.append("a Wait needs at least one event (On or OnEvent)")
        return problems

    def enter(self, stmt: Wait, cursor: Cursor) -> Wait:
        return stmt

    def resume(self, stmt: Wait, thread: Thread, cursor: Cursor) -> None:
        """After the wait fired, the thread enters the body of the event that fired."""
        if thread.cur_callback is None:
            return
        index = next(i for i, on in enumerate(stmt.events) if on.event == thread.cur_callback)
        on = stmt.events[index]
        cursor.into(index, on)
        cursor.into(0, on.body)

    def json(self, stmt: Wait, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {"type": self.label, "name": stmt.name, "events": [dump(on) for on in stmt.events]}

    def draw(self, stmt: Wait, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        head = drawing.box(entry, f"Wait {stmt.name}", "wait", stmt.name)
        out = []
        for index, on in enumerate(stmt.events):
            if not isinstance(on, On):
                out += drawing.child((index,), [Exit(head)])
                continue
            arm = [Exit(head, f"{on.event} · {handler_text(on.handler)}", on.event)]
            out += drawing.child((index, 0), arm)
        return out or [Exit(head)]


class SleepKind(WaitKind):
    statement = Sleep

    def child_path(self, stmt: Wait, index: int, kid: object, path: str) -> str:
        return f"{path} (its timer event)"

    def problems(self, stmt: Wait, site: Site) -> list[str]:
        assert isinstance(stmt, Sleep)
        problems = name_problems(stmt.name)
        if not isinstance(stmt.duration, timedelta) or stmt.duration < timedelta(0):
            problems.append(f"duration must be a non-negative timedelta, got {what(stmt.duration)}")
        return problems

    def json(self, stmt: Wait, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        assert isinstance(stmt, Sleep)
        return {
            "type": self.label,
            "name": stmt.name,
            "seconds": seconds(stmt.duration),
            "event": stmt.event,
        }

    def draw(self, stmt: Wait, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        assert isinstance(stmt, Sleep)
        head = drawing.box(entry, f"Sleep {stmt.name}", "wait", stmt.name)
        label = f"{stmt.event} · after {duration_text(stmt.duration)}"
        return [Exit(head, label, stmt.event)]


class OnKind(Kind[On]):
    statement = On
    is_event = True
    inside = Wait

    def names(self, stmt: On) -> list[str]:
        return [stmt.event]

    def children(self, stmt: On) -> tuple[Any, ...]:
        return (stmt.body,)

    def problems(self, stmt: On, site: Site) -> list[str]:
        problems = name_problems(stmt.event, what="event name")
        if not callable(getattr(stmt.handler, "handle", None)):
            hint = " (use OnEvent(event, fn) for a function)" if callable(stmt.handler) else ""
            problems.append(
                f"handler must have a callable handle method, got {what(stmt.handler)}{hint}"
            )
        return problems

    def json(self, stmt: On, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {
            "type": self.label,
            "event": stmt.event,
            "handler": handler_type(stmt.handler),
            "timer": _timer_json(stmt.handler),
            "body": [dump(kid) for kid in stmt.body.body],
        }

    def draw(self, stmt: On, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        return drawing.invalid(entry)  # a Wait draws its events' bodies itself


def handler_text(handler: object) -> str:
    """What an event waits on: ``after 24h`` / ``at <time>`` for a Timer, else the handler type."""
    if isinstance(handler, Timer):
        return (
            f"at {handler.at.isoformat()}"
            if handler.at
            else f"after {duration_text(handler.delay)}"
        )
    return handler_type(handler)


def _timer_json(handler: object) -> int | float | str | None:
    if not isinstance(handler, Timer):
        return None
    return handler.at.isoformat() if handler.at is not None else seconds(handler.delay)


register(WaitKind())
register(SleepKind())
register(OnKind())

"""The frozen values inside a thread and a state: events, requests, progress, frames, the saga.

Part of the execution state (`stmtflow.state`, which re-exports every name here): each is a
pydantic model that is never changed in place (a change is a copy), so a thread's JSON kept by
`stmtflow.state.dump_state` cannot go stale under it. Also the two model bases and the
field filters that leave unused fields out of the JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stmtflow._state_statuses import WaitEventStatus

__all__ = [
    "CallbackRequest",
    "CaughtError",
    "Compensation",
    "ForEachProgress",
    "Frame",
    "SagaEntry",
    "WaitEvent",
]


def _unset(value: object) -> bool:
    """Fields added after the first format are left out of the JSON while unused."""
    return value is None or value == {}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False)


class _Value(BaseModel):
    """A part of a thread that is never changed in place: a change is a new value
    (``event.model_copy(update=...)``), so a thread's JSON cannot go stale under it."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False, frozen=True)


class CallbackRequest(_Value):
    """Addresses one event of one waiting thread.

    A caller delivering an event fills ``name`` (and ``workflow_id``); ``thread_id`` and ``pc``
    narrow the routing when given. A handler's ``setup`` receives the full stored request.
    Requests are frozen: one with other fields is a copy (``req.model_copy(update=...)``).

    Example:
        >>> CallbackRequest(workflow_id="order-1", name="paid").pc
        0
    """

    workflow_id: str = ""
    """The execution's id ("" means: whichever execution the call is made on)."""
    thread_id: str = ""
    """The waiting thread's id ("" means: whichever thread waits on ``name``)."""
    name: str
    """The event name (the ``On`` event)."""
    pc: int = 0
    """The thread's pc when the wait armed the event (0 means: whichever wait awaits it now)."""
    setup_data: str = ""
    """What the handler's ``setup`` returned, e.g. a timer deadline or a webhook id."""


class WaitEvent(_Value):
    """An event armed by a thread's current ``Wait``, or an ended wait's event due for teardown.

    Events are frozen: the interpreter records a setup, a teardown or a failure by putting a
    changed copy in the event's place.
    """

    type: str
    """The handler's type (its ``type`` attribute, default its class name), e.g. ``Timer``."""
    req: CallbackRequest
    """The request the event was armed with."""
    status: WaitEventStatus = WaitEventStatus.PENDING_SETUP
    """Its life-cycle stage."""
    handled: bool = False
    """True for the event that fired (its teardown is called with ``handled=True``)."""
    error: str | None = None
    """The last setup or teardown failure's message, while one is outstanding."""
    body_of: tuple[tuple[str, Any], ...] | None = Field(default=None, exclude_if=_unset)
    """Only on an event awaiting teardown that a body built from a thread's arg armed
    (``Go(name, fn)``, a ``ForEach``): that body's `Thread.within` chain, so it can be built
    again to find the handler after the thread ended. Left out of the JSON otherwise."""


def _empty(value: object) -> bool:
    """A field left out of the JSON when it holds nothing: states that use no try/catch and
    no compensation are written exactly as before those existed."""
    return not value


class ForEachProgress(_Value):
    """How far a thread standing at a ``ForEach`` is: the index of the next item to start.

    The items themselves are not kept: the ``ForEach`` reads them again (its ``items``, from
    the definition or the data) each time it starts the next ones, so the state is O(live
    threads) whatever the number of items. Started items live only on their own threads
    (``Thread.arg``) and ended ones nowhere.
    """

    group: str
    """The group of the item threads (their ids are ``f"{group}[{index}]"``)."""
    next: int
    """The index (in the items list) of the next item to start."""
    count: int | None = Field(default=None, exclude_if=_unset)
    """How many items there were when the ``ForEach`` was reached; ``next == count`` once all
    started. None only in a state written before ``count`` existed (which has `pending`)."""
    pending: tuple[Any, ...] = Field(default=(), exclude_if=_empty)
    """Only in a state written before ``count`` existed: the items not started yet, in order
    (``next`` is the index of the first), which such a state goes on with. Left out otherwise."""

    def left(self) -> int:
        """How many items have not started yet."""
        return len(self.pending) if self.count is None else self.count - self.next


class CaughtError(_Value):
    """A step's final failure as a ``Try`` caught it; `current_error` returns it in the catch.

    Example:
        >>> CaughtError(type="CardDeclined", message="insufficient funds", step="charge").attempt
        1
    """

    type: str
    """The exception's class name, e.g. ``CardDeclined``."""
    message: str
    """``str()`` of the exception."""
    step: str
    """The step that failed."""
    attempt: int = 1
    """Attempts the step made, the failed one included."""


class Frame(_Value):
    """A ``Try`` a thread is inside: in its body, or (``error`` set) in one of its catches."""

    pc: int
    """The execution's ``pc`` when the thread entered the ``Try``: the steps it completed since
    are the ones a ``Compensate()`` in the catch undoes."""
    error: CaughtError | None = Field(default=None, exclude_if=_empty)
    """What was caught, once the thread moved into a catch body."""


class SagaEntry(_Value):
    """A completed step that has a compensation not yet run (``State.saga``)."""

    step: str
    """The step's name."""
    thread: str
    """The thread that ran it."""
    pc: int
    """The ``step_pc`` of that execution: the compensation's idempotency key is built from it."""
    body_of: tuple[tuple[str, Any], ...] | None = Field(default=None, exclude_if=_unset)
    """Only for a step of a body built from a thread's arg (``Go(name, fn)``, a ``ForEach``):
    the chain of bodies it ran in (as `WaitEvent.body_of`), to build that body again and find
    the compensation after the thread ended. Left out of the JSON otherwise."""


class Compensation(_Value):
    """A compensation due (``State.unwinding``) or run (``State.compensated``)."""

    step: str
    """The step whose compensation it is."""
    thread: str
    """The thread that ran the step."""
    pc: int
    """The ``step_pc`` of the step execution it undoes."""
    body_of: tuple[tuple[str, Any], ...] | None = Field(default=None, exclude_if=_unset)
    """Only for a step of a body built from a thread's arg (``Go(name, fn)``, a ``ForEach``):
    the chain of bodies it ran in (as `WaitEvent.body_of`), to build that body again and find
    the compensation after the thread ended. Left out of the JSON otherwise."""
    attempt: int = Field(default=0, exclude_if=_empty)
    """Failed attempts so far (due), or attempts made (run)."""
    retry_at: datetime | None = Field(default=None, exclude_if=_empty)
    """When a failed compensation may run again."""
    error: str | None = Field(default=None, exclude_if=_empty)
    """The latest failure's message; on a run compensation, why it failed for good."""

"""The execution state: where every thread of a workflow stands, as plain JSON.

Only the interpreter changes a `State`; a service stores its JSON (``state.model_dump_json()``)
next to the workflow data and loads it back with `load_state`. The format is public and pinned by
golden files in ``tests/snapshots``; ``docs/state-format.md`` describes every field.

Example:
    >>> state = new_state("order-1", "Order")
    >>> [t.id for t in state.threads], state.status.value
    (['_main_'], 'resuming')
    >>> load_state(state.model_dump_json()) == state
    True
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from stmtflow.errors import StateFormatError

__all__ = [
    "COMPENSATIONS_KEPT",
    "FORMAT_VERSION",
    "MAIN_THREAD",
    "TERMINAL_STATUSES",
    "CallbackRequest",
    "CaughtError",
    "CheckpointType",
    "Compensation",
    "ForEachProgress",
    "Frame",
    "SagaEntry",
    "State",
    "StateParts",
    "StateText",
    "Thread",
    "ThreadStatus",
    "WaitEvent",
    "WaitEventStatus",
    "WorkflowStatus",
    "dump_state",
    "load_state",
    "new_state",
    "state_parts",
]

MAIN_THREAD = "_main_"
"""Id and name of the thread every execution starts with."""

COMPENSATIONS_KEPT = 100
"""How many succeeded compensations ``State.compensated`` keeps."""

FORMAT_VERSION = 1
"""The state format this release writes. Every earlier version must keep loading."""


class WorkflowStatus(StrEnum):
    """Where the whole execution stands."""

    RESUMING = "resuming"
    """Some thread can move."""
    WAITING = "waiting"
    """Every thread is blocked on an event, a condition or a retry time."""
    FINISHED = "finished"
    """The main thread ended."""
    FAILED = "failed"
    """A step used up its retry attempts (or raised a non-retryable error); see ``State.error``."""
    CANCELLED = "cancelled"
    """Cancelled from outside; its threads were ended and their events torn down."""
    COMPENSATING = "compensating"
    """Running compensations (``State.unwinding``), after an uncaught final failure, a
    ``cancel(compensate=True)`` or a ``Compensate()``; no thread moves meanwhile."""


TERMINAL_STATUSES: frozenset[WorkflowStatus] = frozenset(
    {WorkflowStatus.FINISHED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
)
"""The statuses of an ended execution: nothing in it runs again (only a failed setup or teardown
is still retried). Members are `str` values too, so a stored status string tests the same way:
``"finished" in TERMINAL_STATUSES``."""


class ThreadStatus(StrEnum):
    """What a thread's next move is."""

    EXECUTING = "executing"
    """Its next move runs the step at ``cur_step``."""
    RESUMING = "resuming"
    """Its next move finds its next position after ``cur_step`` (or enters ``cur_callback``)."""
    WAITING_EVENT = "waiting_event"
    """It stands at a ``Wait`` until one of ``wait_events`` arrives."""
    WAITING_CONDITION = "waiting_condition"
    """It stands at a ``WaitFor`` until the condition is true, or at a ``Join`` or ``ForEach``
    until enough threads of its group ended (a ``ForEach`` then starts its next items, or goes
    on); checked, like every condition, when no thread can move."""


class WaitEventStatus(StrEnum):
    """Life cycle of one armed event."""

    PENDING_SETUP = "pending_setup"
    """Armed, its handler's ``setup`` not yet called."""
    SETUP = "setup"
    """``setup`` succeeded; ``req.setup_data`` holds what it returned."""
    PENDING_TEARDOWN = "pending_teardown"
    """The wait is over; ``teardown`` is due."""
    SETUP_ERROR = "setup_error"
    """``setup`` raised (``error`` has the message); retried on every later resume."""
    TEARDOWN_ERROR = "teardown_error"
    """``teardown`` raised (``error`` has the message); retried on every later resume."""


class CheckpointType(StrEnum):
    """Which unit of progress a checkpoint call follows."""

    AFTER_STEP = "after_step"
    """A step's action ran (or a failed attempt was recorded under a retry policy)."""
    AFTER_SETUP = "after_setup"
    """An event's ``setup`` succeeded."""
    AFTER_TEARDOWN = "after_teardown"
    """An event's ``teardown`` succeeded."""
    AFTER_RESUME = "after_resume"
    """A thread made a scheduling move: started, advanced to its next position, or ended."""
    AFTER_CONDITION = "after_condition"
    """A ``WaitFor`` condition became true (and its handler ran)."""


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


class Thread(_Model):
    """A thread of execution, positioned by the name of its current statement.

    Every change to a thread is an attribute write (its events are frozen values in a tuple), and
    each write drops the JSON `dump_state` kept of the thread.
    """

    __slots__ = ("_json",)

    id: str
    """Unique among live threads: ``_main_``, or the ``Go``'s id (default its name)."""
    name: str
    """``_main_``, or the name of the ``Go`` that started the thread."""
    status: ThreadStatus
    """What its next move is."""
    cur_step: str = ""
    """Name of the statement it stands at; "" before its first move."""
    cur_callback: str | None = None
    """The event that fired at its ``Wait``, until the thread has entered that event's body."""
    wait_events: tuple[WaitEvent, ...] = ()
    """Events armed by its current ``Wait`` (empty otherwise); a JSON array."""
    pc: int = 0
    """The execution's ``pc`` at this thread's latest unit of progress (strictly increasing)."""
    step_pc: int = 0
    """The execution's ``pc`` when the thread reached ``cur_step``; keys idempotency."""
    attempt: int = 0
    """Failed attempts of the current step so far (under a retry policy)."""
    retry_at: datetime | None = None
    """When the current step may run again after a failed attempt."""
    last_error: str | None = None
    """The message of the current step's latest failure."""
    arg: Any = Field(default=None, exclude_if=_unset)
    """The thread's argument (JSON): ``Go(..., arg=...)`` evaluated when the thread started, or
    a ``ForEach`` item. A callable body is called with it. Left out of the JSON when None."""
    group: str | None = Field(default=None, exclude_if=_unset)
    """The group the thread belongs to (``Go(..., group=...)``, or its ``ForEach``'s), which a
    ``Join`` waits on. Left out of the JSON when None."""
    within: tuple[tuple[str, Any], ...] | None = Field(default=None, exclude_if=_unset)
    """For a thread started inside a body built from an arg: the bodies around its ``Go`` (or
    ``ForEach``), outermost first, each as the ``[name, arg]`` of the thread it is the body
    of. Left out of the JSON for a thread started from the definition's own tree."""
    foreach: ForEachProgress | None = Field(default=None, exclude_if=_unset)
    """While the thread stands at a ``ForEach``: how far it is. Left out of the
    JSON otherwise."""
    frames: tuple[Frame, ...] = Field(default=(), exclude_if=_empty)
    """The ``Try`` statements the thread is inside, outermost first (left out of the JSON when
    empty)."""

    def __setattr__(self, name: str, value: Any) -> None:
        """Set a field, as pydantic does, and drop the JSON `dump_state` kept of the thread."""
        if name in _THREAD_FIELDS:
            # What pydantic's own ``__setattr__`` does for a field of a model that validates no
            # assignment, without its two further calls: a step writes six thread fields, and
            # this is 8-17 % of W1(a) (docs/performance.md, "Reshape").
            self.__dict__[name] = value
            self.__pydantic_fields_set__.add(name)
        else:
            super().__setattr__(name, value)  # pydantic's error for a name that is no field
        object.__setattr__(self, "_json", None)


_THREAD_FIELDS = frozenset(Thread.model_fields)
"""The names `Thread.__setattr__` sets itself."""


class State(_Model):
    """The execution of one workflow instance.

    Example:
        >>> s = new_state("wf-1", "Order")
        >>> s.threads[0].status.value, s.pc
        ('resuming', 0)
    """

    format: int = FORMAT_VERSION
    """Version of this JSON format."""
    id: str
    """The workflow instance's id."""
    workflow: str
    """The workflow type's name."""
    status: WorkflowStatus
    """Where the whole execution stands."""
    threads: list[Thread]
    """Live threads in creation order, main first. Ended threads are removed."""
    pc: int = 0
    """Counts units of progress; strictly increases with each."""
    teardowns: list[WaitEvent] = Field(default_factory=list)
    """Events of ended waits whose ``teardown`` is due or failed; retried on every resume."""
    error: str | None = None
    """Why the workflow failed (status ``failed``), naming thread and step."""
    groups: dict[str, int] = Field(default_factory=dict, exclude_if=_unset)
    """For each thread group (``Go(..., group=...)``, a ``ForEach``) with threads that ended
    since its last ``Join``: how many. Left out of the JSON when empty."""
    saga: list[SagaEntry] = Field(default_factory=list, exclude_if=_empty)
    """The completed steps with a compensation, in completion order, each until it is
    compensated (cleared when the workflow finishes)."""
    unwinding: list[Compensation] = Field(default_factory=list, exclude_if=_empty)
    """The compensations due, the next first; while any is due the status is
    ``compensating``."""
    unwind_to: WorkflowStatus | None = Field(default=None, exclude_if=_empty)
    """Set when every completed step is unwound (an uncaught failure, a cancel with
    compensation): the status the execution ends (or ended) with, ``failed`` or
    ``cancelled``. None otherwise, also while a ``Compensate()`` runs its compensations."""
    compensated: list[Compensation] = Field(default_factory=list, exclude_if=_empty)
    """The compensations that ran, in order; a failed one keeps its ``error``. The latest
    `COMPENSATIONS_KEPT` that succeeded are kept; failures are never dropped."""
    compensated_dropped: int = Field(default=0, exclude_if=_empty)
    """How many succeeded compensations were dropped from ``compensated`` (oldest first)."""
    last_caught: CaughtError | None = Field(default=None, exclude_if=_empty)
    """The latest failure a ``Try`` caught (kept after the catch ended, for ``stmtflow show``)."""

    @model_validator(mode="after")
    def _check(self) -> State:
        if self.format > FORMAT_VERSION:
            raise ValueError(
                f"state format {self.format} is newer than this release reads ({FORMAT_VERSION})"
            )
        seen: set[str] = set()
        for thread in self.threads:
            if thread.id in seen:
                raise ValueError(f"thread id {thread.id!r} appears twice")
            seen.add(thread.id)
        return self

    def thread(self, thread_id: str) -> Thread | None:
        """The live thread with that id, or None."""
        for thread in self.threads:
            if thread.id == thread_id:
                return thread
        return None


def new_state(id: str, workflow: str | type) -> State:
    """A fresh execution with one thread, ``_main_``, about to enter the definition.

    ``workflow`` is the type name (a class is accepted and its name taken).
    """
    if not isinstance(id, str) or not id:
        raise ValueError(f"a workflow id must be a non-empty string, got {id!r}")
    name = workflow if isinstance(workflow, str) else workflow.__name__
    main = Thread(id=MAIN_THREAD, name=MAIN_THREAD, status=ThreadStatus.RESUMING)
    return State(id=id, workflow=name, status=WorkflowStatus.RESUMING, threads=[main])


def load_state(text: str | bytes | dict[str, Any]) -> State:
    """Parse state JSON (or its decoded dict); anything malformed raises `StateFormatError`."""
    try:
        if isinstance(text, dict):
            return State.model_validate(text)
        return State.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise StateFormatError(f"malformed workflow state: {problems}") from exc


_DUMP_THREAD = Thread.__pydantic_serializer__.to_json
_DUMP_STATE = State.__pydantic_serializer__.to_json
_NOT_THREADS = {"threads"}
_AFTER_THREADS = ',"pc":'
_REUSE_FROM = 8
"""Fewer threads than this are dumped in one go: reusing pays only when most stay unchanged."""


class StateParts(NamedTuple):
    """A state's JSON in pieces, one per thread: ``head + "".join(threads) + tail`` is the text.

    ``head`` runs up to the first thread (the opening bracket of ``threads`` included), each of
    ``threads`` is one thread's JSON object, every one but the first with the separator before it
    (a comma), and ``tail`` is the rest. A store that keeps threads apart stores these pieces as
    they are, so putting them back together needs no knowledge of the format.

    Example:
        >>> state_parts('{"id":"a","threads":[{"id":"m"},{"id":"t"}],"pc":3}').threads
        ['{"id":"m"}', ',{"id":"t"}']
    """

    head: str
    threads: list[str]
    tail: str


class StateText(str):
    """A state's JSON as `dump_state` joined it, keeping the pieces it joined (``parts``).

    To anything but a store it is the text. A store that keeps threads apart takes ``parts``
    from here (through `state_parts`) instead of parsing the text again, and a thread unchanged
    since the last dump is the very string object it was then, so comparing it costs nothing.
    """

    parts: StateParts


def state_parts(text: str) -> StateParts | None:
    """The `StateParts` of a state's JSON text, or None when it has no threads to part.

    A `StateText` brings its own; any other text is parsed as JSON (whatever its spacing or key
    order) and cut where the elements of its top-level ``threads`` list begin and end. None
    also for text that is not a JSON object with a non-empty ``threads`` list: a store keeps
    such text whole.
    """
    if isinstance(text, StateText):
        return text.parts if text.parts.threads else None
    try:
        return _parsed_parts(text)
    except ValueError:  # not JSON (json.JSONDecodeError is a ValueError)
        return None


_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in _SPACE:
        at += 1
    return at


def _expect(text: str, at: int, char: str) -> int:
    """The position after ``char`` (and the space after it) at ``at``; ValueError if absent."""
    if not text.startswith(char, at):
        raise ValueError(f"expected {char!r} at {at}")
    return _skip_space(text, at + 1)


def _parsed_parts(text: str) -> StateParts | None:
    """`state_parts` of a plain text: walk the top-level object value by value with the JSON
    decoder, and the elements of ``threads`` one by one, noting where each ends."""
    at = _expect(text, _skip_space(text, 0), "{")
    while not text.startswith("}", at):
        key, at = _DECODER.raw_decode(text, at)
        at = _expect(text, _skip_space(text, at), ":")
        if key == "threads" and text.startswith("[", at):
            return _list_parts(text, at)
        _, at = _DECODER.raw_decode(text, at)
        at = _skip_space(text, at)
        if not text.startswith("}", at):
            at = _expect(text, at, ",")
    return None


def _list_parts(text: str, at: int) -> StateParts | None:
    """The parts of ``text`` around the elements of the JSON list that starts at ``at``."""
    start = _expect(text, at, "[")
    ends: list[int] = []
    at = start
    while not text.startswith("]", at):
        if ends:
            at = _expect(text, at, ",")
        _, at = _DECODER.raw_decode(text, at)
        ends.append(at)
        at = _skip_space(text, at)
    if not ends:
        return None
    cuts = [start, *ends]
    threads = [text[a:b] for a, b in pairwise(cuts)]
    return StateParts(text[:start], threads, text[ends[-1] :])


def dump_state(state: State) -> str:
    """``state.model_dump_json()``, reusing the JSON of every thread unchanged since its last
    dump here.

    A delivery to one of a thousand waiting threads changes one thread, yet the whole state
    is written; dumping a waiting thread costs about 2 µs. So a thread keeps the JSON of its
    last dump, and any attribute write to it drops that. Nothing else can change a thread: its
    events and their requests are frozen, held in a tuple. A thread whose ``wait_events`` was
    given some other sequence (a list, say) is not kept, and is dumped afresh every time. The
    result is byte for byte what ``model_dump_json()`` gives.
    """
    threads = state.threads
    if len(threads) < _REUSE_FROM:
        return state.model_dump_json()
    return _joined(state, [_thread_json(thread) for thread in threads])


def _joined(state: State, texts: list[str]) -> StateText:
    """The state's JSON from its threads' ``texts`` (each after a comma)."""
    # A JSON string escapes its quotes, so the first `,"pc":` of the rest is the field.
    rest = _DUMP_STATE(state, exclude=_NOT_THREADS).decode()
    at = rest.index(_AFTER_THREADS)
    texts[0] = texts[0][1:]  # the first thread follows the list's bracket, not a comma
    head, tail = rest[:at] + ',"threads":[', "]" + rest[at:]
    # One join, so the document (hundreds of KB for a thousand threads) is allocated once;
    # the subclass copies it once more.
    text = StateText("".join([head, *texts, tail]))
    text.parts = StateParts(head, texts, tail)
    return text


def _thread_json(thread: Thread) -> str:
    """``thread``'s JSON after a comma: the text of its last dump while it stays unchanged."""
    text: str | None = getattr(thread, "_json", None)  # unset until first dumped here
    if text is None:
        text = "," + _DUMP_THREAD(thread).decode()
        if _frozen(thread.wait_events) and type(thread.arg) in _SCALARS:
            object.__setattr__(thread, "_json", text)
    return text


_SCALARS = frozenset({type(None), str, int, float, bool})
"""Types of an ``arg`` that cannot change in place (a list or dict could: never kept)."""


def _frozen(events: object) -> bool:
    """Whether ``events`` cannot change without an attribute write to the thread holding them."""
    return type(events) is tuple and all(
        type(event) is WaitEvent and type(event.req) is CallbackRequest for event in events
    )

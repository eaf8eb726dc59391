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
from operator import attrgetter, itemgetter
from typing import Annotated, Any, NamedTuple, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from stmtflow.errors import StateFormatError

__all__ = [
    "FORMAT_VERSION",
    "MAIN_THREAD",
    "CallbackRequest",
    "CheckpointType",
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
    "mark_changed",
    "new_state",
    "state_parts",
]

MAIN_THREAD = "_main_"
"""Id and name of the thread every execution starts with."""

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


class ThreadStatus(StrEnum):
    """What a thread's next move is."""

    EXECUTING = "executing"
    """Its next move runs the step at ``cur_step``."""
    RESUMING = "resuming"
    """Its next move finds its next position after ``cur_step`` (or enters ``cur_callback``)."""
    WAITING_EVENT = "waiting_event"
    """It stands at a ``Wait`` until one of ``wait_events`` arrives."""
    WAITING_CONDITION = "waiting_condition"
    """It stands at a ``WaitFor`` until the condition is true."""


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


class _AsText:
    """Marks a `StrEnum` field to be written as its text directly.

    pydantic's enum serializer asks each member for its ``value`` through Python; a `StrEnum`
    member already is that text. Same JSON and JSON Schema, about a tenth less time to dump a
    waiting thread.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        cast(dict[str, Any], schema)["serialization"] = core_schema.simple_ser_schema("str")
        return schema


_WorkflowStatus = Annotated[WorkflowStatus, _AsText]
_ThreadStatus = Annotated[ThreadStatus, _AsText]
_WaitEventStatus = Annotated[WaitEventStatus, _AsText]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False)
    # What `dump_state` remembers of the model: unset or None once it changed (see there).
    __slots__ = ("_json",)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        object.__setattr__(self, "_json", None)


class CallbackRequest(_Model):
    """Addresses one event of one waiting thread.

    A caller delivering an event fills ``name`` (and ``workflow_id``); ``thread_id`` and ``pc``
    narrow the routing when given. A handler's ``setup`` receives the full stored request.

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


class WaitEvent(_Model):
    """An event armed by a thread's current ``Wait``, or an ended wait's event due for teardown."""

    type: str
    """The handler's type (its ``type`` attribute, default its class name), e.g. ``Timer``."""
    req: CallbackRequest
    """The request the event was armed with."""
    status: _WaitEventStatus = WaitEventStatus.PENDING_SETUP
    """Its life-cycle stage."""
    handled: bool = False
    """True for the event that fired (its teardown is called with ``handled=True``)."""
    error: str | None = None
    """The last setup or teardown failure's message, while one is outstanding."""


class Thread(_Model):
    """A thread of execution, positioned by the name of its current statement."""

    id: str
    """Unique among live threads: ``_main_``, or the ``Go``'s id (default its name)."""
    name: str
    """``_main_``, or the name of the ``Go`` that started the thread."""
    status: _ThreadStatus
    """What its next move is."""
    cur_step: str = ""
    """Name of the statement it stands at; "" before its first move."""
    cur_callback: str | None = None
    """The event that fired at its ``Wait``, until the thread has entered that event's body."""
    wait_events: list[WaitEvent] = Field(default_factory=list)
    """Events armed by its current ``Wait`` (empty otherwise)."""
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
    status: _WorkflowStatus
    """Where the whole execution stands."""
    threads: list[Thread]
    """Live threads in creation order, main first. Ended threads are removed."""
    pc: int = 0
    """Counts units of progress; strictly increases with each."""
    teardowns: list[WaitEvent] = Field(default_factory=list)
    """Events of ended waits whose ``teardown`` is due or failed; retried on every resume."""
    error: str | None = None
    """Why the workflow failed (status ``failed``), naming thread and step."""

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


def mark_changed(model: BaseModel) -> None:
    """Say that a state model's fields were written without ``setattr`` (through its
    ``__dict__``, as the interpreter's hot path does), so `dump_state` dumps it afresh."""
    object.__setattr__(model, "_json", None)


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
    is written; dumping a waiting thread costs about 2 µs. A thread's JSON is kept on it, and
    its events and their requests are marked as part of it; any ``setattr`` on one of them (or
    `mark_changed`) drops the mark. ``wait_events`` is only ever replaced, never changed in
    place; a thread whose list no longer holds exactly the marked events is dumped afresh too.
    The result is byte for byte what ``model_dump_json()`` gives (the test suite checks every
    engine save against it).
    """
    threads = state.threads
    if not threads or len(threads) < _REUSE_FROM:
        return state.model_dump_json()
    return _joined(state, list(map(_thread_json, threads)))


def dump_interpreted(state: State) -> str:
    """`dump_state` for a state only an interpreter changed since its last dump here.

    The interpreter marks a thread changed whenever it changes one of its events (not only the
    event), so a thread's own mark tells all: the marks are read in one pass in C, and only the
    threads without one are dumped afresh. The engine's states are changed by nothing else.
    """
    threads = state.threads
    if not threads or len(threads) < _REUSE_FROM:
        return state.model_dump_json()
    try:
        marks = list(map(_MARK, threads))
    except AttributeError:  # a thread never dumped here (a state just loaded)
        return dump_state(state)
    at = -1
    try:
        while True:  # each thread changed since its last dump (marks.index searches in C)
            at = marks.index(None, at + 1)
            _thread_json(threads[at])
            marks[at] = _MARK(threads[at])
    except ValueError:
        pass
    return _joined(state, list(map(_TEXT, marks)))


_MARK = attrgetter("_json")
_TEXT = itemgetter(0)


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
    """``thread``'s JSON after a comma: kept from its last dump while nothing changed.

    Its events carry that very text as their mark, so "as many events as then, each marked"
    means "the same events, unchanged" (a text object belongs to one dump of one thread).
    """
    try:
        text, count = thread._json  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # never dumped here, or changed since
        pass
    else:
        events = thread.wait_events
        if len(events) == count:
            for event in events:
                if event._json is not text or event.req._json is not text:  # type: ignore[attr-defined]
                    break
            else:
                return text  # type: ignore[no-any-return]
    text = "," + _DUMP_THREAD(thread).decode()
    events = thread.wait_events
    object.__setattr__(thread, "_json", (text, len(events)))
    for event in events:
        object.__setattr__(event, "_json", text)
        object.__setattr__(event.req, "_json", text)
    return text

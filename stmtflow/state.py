"""The execution state: where every thread of a workflow stands, as plain JSON.

Only the interpreter changes a `State`; a service stores its JSON (``state.model_dump_json()``)
next to the workflow data and loads it back with `load_state`. The format is public and pinned by
golden files in ``tests/snapshots``; ``docs/state-format.md`` describes every field.

This module holds the two mutable models (`Thread`, `State`), making and loading a state, and
`dump_state`; it re-exports the rest of the format from where it lives: the statuses and
checkpoint kinds (`stmtflow._state_statuses`), the frozen values inside a thread and a state
(`stmtflow._state_values`), and a state's JSON in pieces (`stmtflow._state_parts`).

Example:
    >>> state = new_state("order-1", "Order")
    >>> [t.id for t in state.threads], state.status.value
    (['_main_'], 'resuming')
    >>> load_state(state.model_dump_json()) == state
    True
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, ValidationError, model_validator

# Private names that moved stay importable from here (an ``x as x`` import re-exports).
from stmtflow._state_parts import _DECODER as _DECODER
from stmtflow._state_parts import _SPACE as _SPACE
from stmtflow._state_parts import StateParts, StateText, state_parts
from stmtflow._state_parts import _expect as _expect
from stmtflow._state_parts import _list_parts as _list_parts
from stmtflow._state_parts import _parsed_parts as _parsed_parts
from stmtflow._state_parts import _skip_space as _skip_space
from stmtflow._state_statuses import (
    TERMINAL_STATUSES,
    CheckpointType,
    ThreadStatus,
    WaitEventStatus,
    WorkflowStatus,
)
from stmtflow._state_values import (
    CallbackRequest,
    CaughtError,
    Compensation,
    ForEachProgress,
    Frame,
    SagaEntry,
    WaitEvent,
    _empty,
    _Model,
    _unset,
)
from stmtflow._state_values import (
    _Value as _Value,
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

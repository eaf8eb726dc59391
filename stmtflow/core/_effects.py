"""What the interpreter asks its driver for: the `Effect`s it yields, and the data snapshot.

The interpreter (`stmtflow.core._interpreter`) is a generator that yields an `Effect` whenever
it needs the outside world — a `Call` into user code (an action, a handler's setup, handle or
teardown, a ``WaitFor`` handler), a `CheckpointType` for the caller's checkpoint function, or a
`RuntimeEffect` only a runtime can perform (`StartChild`, `CancelChild`: other instances) — and
the driver (`stmtflow.core._drivers`) performs it and sends back the result or throws the
exception in. `Data` takes and restores the snapshot that makes a failed action leave the
workflow data exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic_core import PydanticSerializationError

from stmtflow.dsl._child import Child, OnParentEnd, Start, child_id
from stmtflow.dsl._context import StepKey
from stmtflow.dsl._escalation import Escalation
from stmtflow.dsl._handlers import Timer
from stmtflow.dsl._human import HumanInput
from stmtflow.dsl._lock import LockGrant, lock_key
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import ExecutionError
from stmtflow.state import CallbackRequest, CaughtError, CheckpointType

__all__ = [
    "Call",
    "CancelChild",
    "Data",
    "Effect",
    "Run",
    "RuntimeEffect",
    "StartChild",
    "TakeLock",
    "describe",
    "has",
    "is_local",
    "start_child",
    "started_child",
    "take_lock",
]


class Call:
    """Ask the driver to call ``fn(*args)`` (user code) and send back its result."""

    __slots__ = ("args", "data", "error", "fn", "local", "start", "step", "what")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        what: str,
        step: StepKey | None = None,
        *,
        local: bool = False,
        data: bytes | None = None,
        error: CaughtError | None = None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.what = what
        """Names the call in errors, e.g. "the handler of event 'paid' (workflow ...)"; for a
        step action, names the workflow (`describe` adds the step and thread from ``step``)."""
        self.step = step
        """Set for step actions: what ``current_step()`` describes during the call."""
        self.local = local
        """True for the library's own code that touches nothing outside data and state (the
        built-in `Timer`'s setup and handle): nothing needs to be durable before it runs."""
        self.data = data
        """The workflow data's JSON as the call finds it, when the interpreter took it anyway
        (a step's snapshot, kept to restore the data if the action fails): a driver that stores
        the data before the call need not serialise it again."""
        self.start: StartChild | None = None
        """For a `Start`'s step: the child to start first; its id becomes the call's argument."""
        self.error = error
        """For a step action in a catch body: what ``current_error()`` returns during the call."""

    def describe(self) -> str:
        """What is being called, for error messages."""
        if self.step is None:
            return self.what
        _, thread_id, step, _, _ = self.step
        return f"the action of step {step!r} ({self.what}, thread {thread_id!r})"


@dataclass(frozen=True, slots=True)
class StartChild:
    """Ask the runtime to start a child instance with the parent's next checkpoint; the driver
    sends back the child's id (kept as the event's ``setup_data``)."""

    id: str
    """The child's id."""
    workflow: Any
    """A workflow class or a registered type name."""
    input: Any
    """The child's data: a dict, a model or None (a callable was evaluated already)."""
    parent_event: CallbackRequest | None
    """The parent's armed event the child's end is delivered to; None for a `Start`."""
    on_parent_end: OnParentEnd
    """Whether the child is cancelled with its parent."""
    what: str
    """Names the statement and thread in errors."""


@dataclass(frozen=True, slots=True)
class CancelChild:
    """Ask the runtime to cancel child ``id`` (a `Child` torn down unfired, with
    ``on_parent_end="cancel"``), with the parent's next checkpoint."""

    id: str
    what: str


@dataclass(frozen=True, slots=True)
class TakeLock:
    """Ask the runtime to claim a slot of ``key`` for the thread with the next checkpoint (its
    claim is derived from the state: `stmtflow.runtime._locks`); the driver sends back the key
    (kept as the lock event's ``setup_data``)."""

    key: str
    limit: int
    what: str


RuntimeEffect: TypeAlias = StartChild | CancelChild | TakeLock
"""What only a runtime can perform: it touches other instances (plain ``resume`` refuses it)."""

Effect: TypeAlias = Call | CheckpointType | RuntimeEffect
"""What the interpreter yields: a call to make, a checkpoint to pass to the caller's callback, or
an effect on other instances for the runtime."""


def _evaluated(value: Any, name: str, what: str) -> Any:
    """A child's ``input`` or ``id``: a callable is called (user code: what it raises is an
    `ExecutionError` naming ``what``)."""
    if not callable(value) or isinstance(value, type):
        return value
    try:
        return value()
    except Exception as exc:
        raise ExecutionError(f"{what}: the child's {name} raised {describe(exc)}") from exc


def _checked_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ExecutionError(f"{what}: a child id must be a non-empty string, got {value!r}")
    return value


def take_lock(handler: LockGrant, what: str) -> TakeLock:
    """The effect of setting up a lock's event: its key evaluated now (user code: what it
    raises is an `ExecutionError` naming ``what``)."""
    try:
        key = lock_key(handler.lock)
    except Exception as exc:
        raise ExecutionError(f"{what}: the lock's key raised {describe(exc)}") from exc
    return TakeLock(key, handler.lock.limit, what)


def start_child(handler: Child, req: CallbackRequest, what: str) -> StartChild:
    """The effect of setting up a `Child` event armed as ``req``."""
    given = _evaluated(handler.id, "id", what)
    ident = child_id(req.workflow_id, req.name, req.pc) if given is None else given
    return StartChild(
        id=_checked_id(ident, what),
        workflow=handler.workflow,
        input=_evaluated(handler.input, "input", what),
        parent_event=req,
        on_parent_end=handler.on_parent_end,
        what=what,
    )


def started_child(start: Start, parent_id: str, pc: int, what: str) -> StartChild:
    """The effect of a `Start` reached at ``pc`` by a thread of instance ``parent_id``."""
    given = _evaluated(start.id, "id", what)
    ident = child_id(parent_id, start.name, pc) if given is None else given
    return StartChild(
        id=_checked_id(ident, what),
        workflow=start.workflow,
        input=_evaluated(start.input, "input", what),
        parent_event=None,
        on_parent_end="abandon",
        what=what,
    )


Run: TypeAlias = Generator[Effect, Any, Any]


def is_local(handler: object, method: str = "handle") -> bool:
    """Whether ``handler``'s ``method`` (``setup`` or ``handle``) is the library's own code that
    touches nothing outside data and state (see `Call.local`): the built-in `Timer`'s and
    `Escalation`'s, and the setup of `HumanInput` (it records the question; a lazy prompt or
    assignee only reads the data). Not a subclass's, which may override them."""
    kind = type(handler)
    return kind is Timer or kind is Escalation or (method == "setup" and kind is HumanInput)


def describe(exc: BaseException) -> str:
    """An exception as messages show it: ``ValueError: bad amount``."""
    return f"{type(exc).__name__}: {exc}"


class Data:
    """Snapshots and restores the workflow data around user code that may fail."""

    @staticmethod
    def snapshot(wf: WorkflowState, where: str) -> bytes:
        try:
            # What ``wf.model_dump_json()`` does, without its wrapper and the decoding: one per
            # step, 3-7 % of W1(a) (docs/performance.md, "Reshape"); the engine stores these bytes.
            return wf.__pydantic_serializer__.to_json(wf)
        except PydanticSerializationError as exc:
            raise ExecutionError(
                f"{where}: the workflow data cannot be stored as JSON ({exc}); keep only "
                "JSON-serialisable values in the workflow's fields"
            ) from exc

    @staticmethod
    def restore(wf: WorkflowState, snapshot: bytes) -> None:
        fresh = type(wf).model_validate_json(snapshot)
        wf.__dict__.clear()
        wf.__dict__.update(fresh.__dict__)
        object.__setattr__(wf, "__pydantic_fields_set__", set(fresh.__pydantic_fields_set__))
        object.__setattr__(wf, "__pydantic_extra__", fresh.__pydantic_extra__)
        object.__setattr__(wf, "__pydantic_private__", fresh.__pydantic_private__)


def has(handler: Any, method: str) -> bool:
    """Whether ``handler`` has a callable ``method`` (setup and teardown are optional)."""
    return callable(getattr(handler, method, None))

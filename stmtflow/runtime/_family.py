"""A unit's dealings with other instances and with its own inbox: children and messages.

Nothing here writes on its own. What a unit does to other instances — start a child, cancel
one, tell its parent it ended — is collected in a `Family` and handed to the store as a
`Batch` with the unit's next write of its own record, in one transaction:

- A child's record is created with the parent checkpoint that armed it (a `Child` event's
  setup, a `Start`'s step). A crash before that commit leaves neither; the setup runs again and
  derives the same child id, so no child is ever started twice.
- A child's end is posted to its parent's inbox by the child's last write, the one that makes
  it finished, failed or cancelled: the `ChildResult` exists exactly when the end does.
- A cancel (a `Child` torn down unfired) is a message to the child, posted with the parent's
  teardown checkpoint; the child's next unit cancels it (and, the same way, its own children).
- The inbox is read once per unit (when the record says it holds something), in arrival order;
  a message delivered, dropped or kept is marked so with the unit's next write, so a crash
  before that write delivers it again to the state that had not seen it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from stmtflow.core._effects import CancelChild, RuntimeEffect, StartChild, describe
from stmtflow.core._program import Program
from stmtflow.dsl._child import ChildResult, ChildStatus
from stmtflow.errors import (
    CallbackError,
    ExecutionError,
    NotWaiting,
    StaleCallback,
    StmtflowError,
    UnknownCallback,
)
from stmtflow.state import TERMINAL_STATUSES, CallbackRequest, WorkflowStatus, new_state
from stmtflow.stores.base import NO_BATCH, Batch, Message, Record

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine
    from stmtflow.runtime._unit import Unit

_log = logging.getLogger("stmtflow.engine")


__all__ = ["Family", "chain", "child_record", "child_result", "follow_up"]

_ROUTING = (UnknownCallback, StaleCallback, NotWaiting)
"""Refusals that mean "no wait takes this event now" (a buffered message waits for one)."""


class Family:
    """What one unit starts, cancels, posts and takes from its inbox, until its next write."""

    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        self.create: list[Record] = []
        self.post: list[Message] = []
        self.take: list[int] = []
        self.keep: list[int] = []
        self.keys: list[str] = []
        self.cascade = True
        """False for `Engine.cancel` with ``cascade=False``: children are left running."""
        self.error: str | None = None
        """Why a message could not be taken, kept on the record with the next write (which
        then wakes the instance again after the error backoff, to retry it)."""
        self._inbox: list[Message] | None = None

    @property
    def idle(self) -> bool:
        """Nothing to write beyond the record."""
        return not (self.create or self.post or self.take or self.keep or self.keys)

    def batch(self) -> Batch:
        """What the next write applies with the record."""
        if self.idle:
            return NO_BATCH
        return Batch(
            create=tuple(self.create),
            post=tuple(self.post),
            take=tuple(self.take),
            keep=tuple(self.keep),
            keys=tuple(self.keys),
        )

    def written(self, batch: Batch) -> None:
        """``batch`` was committed: forget it, and have the engine run the instances it touched."""
        if batch.empty:
            return
        self.create.clear()
        self.post.clear()
        self.take.clear()
        self.keep.clear()
        self.keys.clear()
        touched = [(r.id, r.lease_owner) for r in batch.create]
        touched += [(m.to, None) for m in batch.post]
        self.unit.engine._follow_up(touched)

    def discard(self) -> tuple[int, ...]:
        """A move was refused (`Unit.refuse`): forget what this unit would have written with
        its next write — children, posts, messages taken — and return the seqs of the messages
        it had taken, to be kept for a later unit instead."""
        taken = tuple(self.take) + tuple(self.keep)
        self.create.clear()
        self.post.clear()
        self.take.clear()
        self.keep.clear()
        self.keys.clear()
        self._inbox = None
        return taken

    # -- effects on other instances ---------------------------------------------------------------

    def perform(self, effect: RuntimeEffect) -> Any:
        """Start a child (its record goes with the next write; returns its id) or cancel one."""
        if isinstance(effect, StartChild):
            record = child_record(self.unit, effect)
            self.create.append(record)
            return record.id
        assert isinstance(effect, CancelChild)
        if self.cascade and effect.id:
            self.post.append(Message(to=effect.id, kind="cancel"))
        return None

    def ending(self, data_json: str) -> None:
        """Before a write: if it ends a child its parent waits on, post the `ChildResult`."""
        unit = self.unit
        rec = unit.rec
        if (
            rec.parent_event is None
            or rec.parent_id is None
            or unit.state.status not in TERMINAL_STATUSES
            or rec.status in TERMINAL_STATUSES
        ):
            return
        event = CallbackRequest.model_validate_json(rec.parent_event)
        outcome = child_result(unit, data_json)
        self.post.append(
            Message(
                to=rec.parent_id,
                event=event.name,
                thread_id=event.thread_id,
                pc=event.pc,
                input=outcome.model_dump_json(),
            )
        )

    # -- the inbox ---------------------------------------------------------------------------------

    def drain(self) -> bool:
        """Take what the inbox holds, in arrival order, until one event is delivered (True:
        resume, then drain again) or nothing more can be taken now (False)."""
        unit = self.unit
        if self._inbox is None:
            if not unit.rec.inbox:
                return False
            self._inbox = unit.engine.store.inbox(unit.rec.id)
        inbox = self._inbox
        for message in list(inbox):
            if unit.state.status in TERMINAL_STATUSES or message.kind == "cancel":
                self._taken(message)
                if message.kind == "cancel" and unit.state.status not in TERMINAL_STATUSES:
                    unit.cancel()
                continue
            req = CallbackRequest(
                workflow_id=unit.rec.id,
                thread_id=message.thread_id,
                name=message.event,
                pc=message.pc,
            )
            try:
                unit.deliver(req, json.loads(message.input))
            except _ROUTING:
                if not message.buffered:
                    self._taken(message)  # a child's end for a wait that is gone
                else:
                    self._keep(message)
                continue
            except CallbackError as exc:
                # Its handler (a Call's result, a buffered event's handler) raised, or its input
                # no longer fits: kept, with the error, for a later unit (after the error
                # backoff) to deliver again, e.g. once the code is fixed. Never dropped.
                self._keep(message)
                self.error = f"message {message.seq} for event {message.event!r} not taken: {exc}"
                continue
            self._taken(message)
            return True
        return False

    def _keep(self, message: Message) -> None:
        """Leave ``message`` for a later unit (a ``new`` one becomes ``kept``: no longer due)."""
        if message.status == "new" and message.seq not in self.keep:
            self.keep.append(message.seq)
            self.unit.pending = True

    def _taken(self, message: Message) -> None:
        assert self._inbox is not None
        self._inbox.remove(message)
        self.take.append(message.seq)
        self.unit.pending = True


def child_record(unit: Unit, effect: StartChild) -> Record:
    """The record of the child ``effect`` starts, checked: a registered type, an input that
    fits its fields, a valid definition (else an `ExecutionError` naming the statement)."""
    engine = unit.engine
    try:
        cls = engine.workflow_class(effect.workflow)
    except StmtflowError as exc:
        raise ExecutionError(f"{effect.what}: {exc}") from exc
    name = engine.type_name(cls)
    given = effect.input
    try:
        if isinstance(given, cls):
            wf = given
        elif isinstance(given, BaseModel):
            wf = cls.model_validate(given.model_dump())
        else:
            wf = cls.model_validate({} if given is None else given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(input)'}: {e['msg']}" for e in exc.errors()
        )
        raise ExecutionError(
            f"{effect.what}: the input does not fit child workflow {name}: {problems}"
        ) from exc
    Program(wf.definition(), cls, f"workflow {effect.id!r} ({name})")
    parent = unit.rec
    # Held from birth by a claim of this engine: the engine runs it next without claiming it
    # (a crash leaves it to a worker once the lease lapses, as a started instance).
    from stmtflow.runtime._unit import claim_owner  # the unit module imports this one

    owner = claim_owner(engine)
    return Record(
        id=effect.id,
        workflow=name,
        data=wf.model_dump_json(),
        state=new_state(effect.id, name).model_dump_json(),
        status=WorkflowStatus.RESUMING.value,
        wake_at=unit.now,
        parent_id=parent.id,
        root_id=parent.root_id or parent.id,
        parent_event=None if effect.parent_event is None else effect.parent_event.model_dump_json(),
        on_parent_end=effect.on_parent_end,
        lease_owner=owner,
        lease_expires=unit.now + engine.lease,
    )


def child_result(unit: Unit, data_json: str) -> ChildResult:
    """How the unit's (ended) instance ended, for its parent: ``output`` is its ``result()``
    (a method of the workflow class), else its data as JSON."""
    state = unit.state
    status = cast(ChildStatus, state.status.value)
    error = state.error if state.status is WorkflowStatus.FAILED else None
    if state.status is WorkflowStatus.CANCELLED:
        error = "cancelled"
    method = getattr(type(unit.wf), "result", None)
    output: Any
    if callable(method):
        try:
            output = to_jsonable_python(unit.wf.result())  # type: ignore[attr-defined]
        except Exception as exc:
            status, output = "failed", None
            error = f"result() of workflow {unit.rec.id!r} raised {describe(exc)}"
    else:
        output = json.loads(data_json)
    return ChildResult(
        id=unit.rec.id, workflow=unit.rec.workflow, status=status, output=output, error=error
    )


# -- follow-ups: the instances a call's units touched, run before the call returns -------------


@contextmanager
def chain(engine: Engine) -> Iterator[None]:
    """Within the outermost engine call: once its units are done, run the instances they created
    or posted to (children to start, parents to wake, children to cancel), latest first, and
    theirs in turn. Each is due in the store anyway: a worker would run it otherwise."""
    local = engine._local
    if getattr(local, "queue", None) is not None:
        yield
        return
    queue: list[tuple[str, str | None]] = []
    local.queue = queue
    try:
        yield
        while queue:
            _follow(engine, *queue.pop())
    finally:
        local.queue = None


def follow_up(engine: Engine, touched: list[tuple[str, str | None]]) -> None:
    """Instances a unit's write touched, each with the lease owner the engine created it under
    (a child held from birth) or None; without a `chain`, a worker's job."""
    queue = getattr(engine._local, "queue", None)
    if queue is not None:
        queue.extend(reversed(touched))


def _follow(engine: Engine, id: str, born: str | None) -> None:
    """Work one touched instance now, if nobody else holds it; its errors are kept on it.

    A child created under ``born`` is worked under that lease as created (no claim); any other
    instance without a live lease as read, its first write taking the lease if user code is to
    run (one commit for a parent taking a child's end, as for a `send`).
    """
    from stmtflow.runtime._unit import Contended, claim, open_unit  # that module imports this

    now = engine.clock()
    try:
        rec = engine.store.get(id)
    except LookupError:
        return
    mine = born is not None and rec.lease_owner == born
    if rec.lease_live(now) and not mine:
        return  # held by another unit, which will see what was posted
    try:
        try:
            with open_unit(engine, rec, now, leased=mine) as unit:
                unit.work_due()
                unit.finish()
        except Contended:  # another writer came first: take the lease and look again
            with open_unit(engine, claim(engine, id), now) as unit:
                unit.work_due()
                unit.finish()
    except (StmtflowError, ValidationError) as exc:
        _log.warning("instance %s: %s", id, exc)

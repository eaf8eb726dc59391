"""The unit of work: load a record, run the interpreter on it, save it, under a lease.

Every unit of work on an instance — start it, deliver an event, fire its due timers, retry its
failed step, cancel it — runs under a lease on its record and is persisted checkpoint by
checkpoint with compare-and-set writes fenced by that lease. A worker that lost its lease
cannot commit; a worker that dies leaves the record claimable once the lease lapses, and the
next worker carries on from the last persisted checkpoint.

When progress is written: an effect (a step that ran, a setup or teardown done, an event
delivered) is written at the latest right before the next call into user code (a step's
action, a handler, a setup or a teardown) and at the end of the unit, in the same commit that
drops the lease; scheduling moves ride along with the next such write. No user code ever runs
after an effect that is not durable. A crash loses at most the moves made since the last write
— recomputed identically from the data, as a move runs no user code with effects — and, if the
process dies just after an action returned, that action's checkpoint: the step then runs again
with the same ``current_step().key`` (DESIGN §3.11). A unit costs one commit per step plus one
at the end. What a step action `emit`-ted rides in the write that commits that step's progress
(`stmtflow.runtime._outbox`): a message is stored exactly when its step's checkpoint is.

Each write also stores when the instance needs the engine next (`wake_at`): the one answer to
"when is this instance due", by which workers claim it and the test harness moves its clock.

Here: opening a unit (`open_unit`), the interpreter's callbacks and the work a unit does. How it
writes (`save`, `refuse`, `Contended`, `wake_at`) is the `UnitWrites` mixin in
`stmtflow.runtime._unit_writes`; claiming a record (`claim`, `claim_owner`) is
`stmtflow.runtime._claim`. Both are re-exported from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stmtflow.core._drivers import drive
from stmtflow.core._effects import RuntimeEffect, StartChild, TakeLock
from stmtflow.core._interpreter import Call, Interpreter
from stmtflow.core._thread_index import ThreadIndex
from stmtflow.core._timers import due_timers
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import (
    ConflictError,
    DefinitionError,
    StepError,
    StepLimitExceeded,
    StmtflowError,
)
from stmtflow.runtime._claim import claim, claim_owner
from stmtflow.runtime._family import Family
from stmtflow.runtime._history import HistoryLog
from stmtflow.runtime._inputs import asking
from stmtflow.runtime._locks import claims_of
from stmtflow.runtime._observe import observed_step, observed_unit
from stmtflow.runtime._outbox import Emitting
from stmtflow.runtime._unit_writes import Contended, UnitWrites, wake_at
from stmtflow.runtime._unit_writes import _thread_error as _thread_error
from stmtflow.state import (
    TERMINAL_STATUSES,
    CallbackRequest,
    CheckpointType,
    State,
    ThreadStatus,
    WorkflowStatus,
    load_state,
)
from stmtflow.stores import Record

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine

__all__ = ["Contended", "DueWork", "Unit", "claim", "claim_owner", "open_unit", "wake_at"]

MOVES = (CheckpointType.AFTER_RESUME, CheckpointType.AFTER_CONDITION)
_DUE_STATUSES = (WorkflowStatus.RESUMING, WorkflowStatus.COMPENSATING)
"""Checkpoints of scheduling moves (see `Unit.checkpoint`)."""


@contextmanager
def open_unit(engine: Engine, rec: Record, now: datetime, *, leased: bool = True) -> Iterator[Unit]:
    """Work on a record; a lease held or taken is released at the end, whatever happens.

    The data is always parsed from the record (user code may hold on to an earlier object);
    the state is reused from ``engine``'s last unit on the record when it is still valid
    (`WarmStates`).
    """
    cls = engine.workflow_class(rec.workflow)
    state, index = engine._warm.take(rec, cls)
    wf = cls.model_validate_json(rec.data)
    if state is None:
        state = load_state(rec.state)
    unit = Unit(engine, rec, wf, state, now, leased=leased, index=index)
    try:
        with observed_unit(unit):
            yield unit
    finally:
        if not unit.released and unit.fence is not None:
            engine.store.release(rec.id, unit.owner, unit.fence)


@dataclass(slots=True)
class DueWork:
    """What a unit on a due instance did (`Unit.work_due`)."""

    resumed: bool = False
    """A due retry ran, or work a crashed unit left (the execution was resuming)."""
    timers: list[str] = field(default_factory=list)
    """The timer events fired, in the order they fired."""

    @property
    def count(self) -> int:
        """How many things fell due: the timers, plus one for a resumption."""
        return len(self.timers) + self.resumed


class Unit(UnitWrites):
    """One unit of work on a record, persisted compare-and-set.

    Effects are written at the latest before the next call into user code (an action, a
    handler, a setup or teardown) and at the end of the unit, where the last write also drops
    the lease; moves ride along. So no user code ever runs after an effect that is not durable,
    and a unit costs one commit per step plus one at the end, not one per checkpoint.

    A leased unit works on a claimed record, its writes fenced by the claim. An unleased one
    (``leased=False``, an optimistic `Engine.send`) works on a record as read: its first write
    requires that nobody holds a live lease and, if user code is about to run, takes the lease
    in the same commit; losing that race raises `Contended` with nothing stored.
    """

    def __init__(
        self,
        engine: Engine,
        rec: Record,
        wf: WorkflowState,
        state: State,
        now: datetime,
        *,
        leased: bool = True,
        index: ThreadIndex | None = None,
    ) -> None:
        self.engine = engine
        self.rec = rec
        self.fence: int | None = rec.fence if leased else None
        self.owner = rec.lease_owner or engine.owner
        self.wf = wf
        self.state = state
        self.now = now
        self.saved = (rec.data, rec.state)
        self.pending = False
        self.released = False
        self.awaiter = engine._async.awaiter
        """Waits for what an async action, handler, setup or teardown returned
        (`stmtflow.runtime._async`)."""
        self.refused = False
        """A child this unit was to start was refused (`perform`): see `refuse`."""
        self.family = Family(self)
        """What this unit does to other instances and to its inbox, written with its writes."""
        self.emitting = Emitting(engine.store)
        """What its step actions emitted, written with the write that commits them."""
        # A reused state (it comes with its index) is one an interpreter of this class left.
        self.interpreter = Interpreter(
            wf, state, now, engine.default_retry, checked=index is not None, index=index
        )
        self.asking = asking(state, self.interpreter.index)
        """Who waits on a person in the state as stored: what the store's input rows say."""
        self.locks = claims_of(state, self.interpreter.bodies)
        """The lock claims of the state as stored: what the store's lock rows say."""
        self.history = HistoryLog(engine, rec.status)
        """The history events since the last write, written with the next one."""
        self.interpreter.notes = self.history.notes
        if rec.version == 1:  # never written since created (started, a child, a fork)
            self.history.note("started", detail={"workflow": rec.workflow})

    # -- writing: `UnitWrites` (stmtflow.runtime._unit_writes) ------------------------------------

    # -- the interpreter's callbacks --------------------------------------------------------------

    def checkpoint(self, kind: CheckpointType) -> None:
        # A scheduling move runs no user code with effects: recomputed identically from the
        # durable data and state after a crash, it need not be written before the next call,
        # only with the next effect or at the end of the unit.
        if kind not in MOVES:
            self.pending = True
        observe = self.engine.on_checkpoint
        if observe is not None:
            observe(kind, self.wf, self.state)

    def flush(self, call: Call) -> None:
        """Make recorded progress durable (called before each call into user code).

        An unleased unit always writes here: user code other than the event's handler runs
        only under a lease, and this write takes it. The data written is the data the call
        finds: its snapshot, if the interpreter took one.
        """
        if self.pending or self.fence is None:
            self.save(data_json=call.data)
        if call.step is not None:  # a step action: what it emits is kept only if it returns
            call.fn = observed_step(
                self.emitting.wrap(call.fn, call.step), call.step, self.rec.workflow
            )

    def perform(self, effect: RuntimeEffect) -> Any:
        """Start or cancel a child, or claim a lock: recorded now, committed with the next
        write (a claim follows from the state the write carries: `stmtflow.runtime._locks`)."""
        self.pending = True
        if isinstance(effect, TakeLock):
            return effect.key
        try:
            done = self.family.perform(effect)
        except StmtflowError:  # a type not registered, an input that does not fit the child
            self.refused = True
            raise
        if isinstance(effect, StartChild):
            workflow = self.family.create[-1].workflow
            event = None if effect.parent_event is None else effect.parent_event.name
            detail = {"child": done, "workflow": workflow}
            self.history.note("child_started", name=event, detail=detail)
        return done

    # -- work -------------------------------------------------------------------------------------

    def deliver(self, req: CallbackRequest, input: Any) -> Any:
        """Run the event's handler and record that it fired; a refusal changes nothing."""
        output = drive(self.interpreter.callback(req, input), None, self.now, awaiter=self.awaiter)
        self.pending = True
        return output

    def cancel(self, *, compensate: bool = False) -> None:
        """End the execution: threads ended, events torn down, status ``cancelled`` (with
        ``compensate``, once the completed steps' compensations ran)."""
        # The cancel is a decision from outside, not a move recomputed after a crash: it is
        # written before any user code (a teardown, a compensation) runs.
        self.pending = True
        run = self.interpreter.cancel(compensate=compensate, max_steps=self.engine.max_steps)
        drive(run, self.checkpoint, self.now, self.flush, self.perform, self.awaiter)

    def run(self) -> None:
        """Resume until blocked, taking what the inbox holds for it in arrival order; an error
        is recorded on the instance, then raised."""
        self._resume()
        while self.family.drain():
            self._resume()

    def _resume(self) -> None:
        engine = self.engine
        try:
            drive(
                self.interpreter.resume(engine.max_steps),
                self.checkpoint,
                self.now,
                self.flush,
                self.perform,
                self.awaiter,
            )
        except ConflictError:
            raise
        except StmtflowError as exc:
            if self.refused or isinstance(exc, DefinitionError):
                self.refuse(str(exc))
                raise
            # Data and state are as at the last checkpoint: keep them, record why, and come
            # back later (at once for a step limit: the loop is long, not broken).
            limit = isinstance(exc, StepLimitExceeded)
            if isinstance(exc, StepError):
                self.history.note("step_failed", name=exc.step, error=str(exc))
            self._record_error(str(exc), self.now if limit else self.now + engine.error_backoff)
            raise

    def work_due(self) -> DueWork:
        """Run what is due at the unit's ``now``: retries, then each due timer in turn."""
        state, now = self.state, self.now
        done = DueWork()
        done.resumed = state.status in _DUE_STATUSES or any(
            t.status is ThreadStatus.EXECUTING and t.retry_at and t.retry_at <= now
            for t in state.threads
        )
        self.run()
        while state.status not in TERMINAL_STATUSES and (due := due_timers(state, now)):
            self.deliver(due[0], None)
            self.run()
            done.timers.append(due[0].name)
        return done

    def finish(self) -> None:
        """The unit's last write: whatever is left, and the lease dropped."""
        self.save(release=True)
        self.engine._warm.keep(self)

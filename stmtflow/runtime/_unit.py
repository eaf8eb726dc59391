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
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticSerializationError

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
from stmtflow.runtime._family import Family
from stmtflow.runtime._history import HistoryLog
from stmtflow.runtime._inputs import Asking, asking, pending_inputs, same_asking, schemas_in
from stmtflow.runtime._locks import changed_claims, claims_of
from stmtflow.runtime._observe import observed_step, observed_unit
from stmtflow.runtime._outbox import Emitting
from stmtflow.state import (
    TERMINAL_STATUSES,
    CallbackRequest,
    CheckpointType,
    State,
    ThreadStatus,
    WorkflowStatus,
    dump_state,
    load_state,
)
from stmtflow.stores import PendingInput, Record
from stmtflow.stores.base import NO_BATCH, Batch, with_changes

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine

__all__ = ["Contended", "DueWork", "Unit", "claim", "claim_owner", "open_unit", "wake_at"]

MOVES = (CheckpointType.AFTER_RESUME, CheckpointType.AFTER_CONDITION)
_DUE_STATUSES = (WorkflowStatus.RESUMING, WorkflowStatus.COMPENSATING)
"""Checkpoints of scheduling moves (see `Unit.checkpoint`)."""


class Contended(Exception):
    """An unleased write found the record changed or leased: redo the work under a lease."""


def wake_at(
    state: State, index: ThreadIndex, now: datetime, error_backoff: timedelta
) -> datetime | None:
    """When an instance needs the engine next: due work, or a retry of a failed setup/teardown.

    ``now`` for an execution left resuming (work a unit did not finish); else the earliest
    retry time of a failed step or deadline of an armed timer, or ``now + error_backoff``
    while an event's setup or teardown waits to be retried (an ended execution keeps a wake-up
    only for that); None when nothing is scheduled. ``index`` files ``state``'s threads, so the
    answer costs no pass over every thread.
    """
    if state.status is WorkflowStatus.RESUMING:
        return now
    if state.status is WorkflowStatus.COMPENSATING and state.unwinding:
        return state.unwinding[0].retry_at or now
    wake, failed_setup = index.wakeups()
    later = now + error_backoff if failed_setup or state.teardowns else None
    if state.status in TERMINAL_STATUSES:
        return later
    return min((t for t in (wake, later) if t is not None), default=None)


def claim_owner(engine: Engine) -> str:
    """A lease owner name for one claim of ``engine``.

    A store lets an owner re-claim its own live lease: each claim gets a name of its own, so
    two units of one engine (two threads sending to one instance) exclude each other.
    """
    return f"{engine.owner}#{uuid.uuid4().hex[:6]}"


def claim(engine: Engine, id: str, wait: timedelta = timedelta(seconds=10)) -> Record:
    """Claim one instance, waiting a little (real time) while another worker holds it."""
    deadline = time.monotonic() + wait.total_seconds()
    delay = 0.01
    owner = claim_owner(engine)
    while True:
        try:
            return engine.store.claim(id, owner, engine.lease, engine.clock())
        except ConflictError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


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


class Unit:
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

    # -- writing ----------------------------------------------------------------------------------

    def save(
        self,
        *,
        release: bool = False,
        error: str | None = None,
        wake: datetime | None = None,
        data_json: bytes | None = None,
    ) -> None:
        """Write data and state (if they changed, or to release, claim or record an error).

        ``wake`` overrides the computed `wake_at`; ``data_json``: the data as JSON, when the
        caller has it serialised already.
        """
        self.pending = False
        data = self.wf.model_dump_json() if data_json is None else data_json.decode()
        state = dump_state(self.state)
        family = self.family
        family.ending(data)
        unchanged = (data, state) == self.saved and error is None and self.rec.error is None
        emitting = self.emitting
        if (
            unchanged
            and not release
            and self.fence is not None
            and family.idle
            and not emitting.pending
        ):
            return
        engine = self.engine
        index = self.interpreter.index
        wake = wake or wake_at(self.state, index, self.now, engine.error_backoff)
        if family.error is not None:  # a message to deliver again later
            retry = self.now + engine.error_backoff
            wake = retry if wake is None else min(wake, retry)
        record = with_changes(
            self.rec,
            data=data,
            state=state,
            status=self.state.status.value,
            wake_at=None if wake is None else wake.astimezone(UTC),
            error=error or self.state.error or _thread_error(index) or family.error,
        )
        now_asking = asking(self.state, index)
        inputs = None if same_asking(now_asking, self.asking) else self._inputs(now_asking)
        batch = emitting.into(family.batch())
        history = self.history.take(record.status, record.error, data, state)
        if history is not None:
            batch = replace(batch, history=history)
        locks = claims_of(self.state, self.interpreter.bodies)
        claims = changed_claims(locks, self.locks)
        if claims is not None:
            batch = replace(batch, locks=claims)
        self._write(record, release=release, batch=batch, inputs=inputs)
        self.history.written(record.status)
        family.written(batch)
        emitting.written(batch, engine)
        self.saved = (data, state)
        self.asking = now_asking
        self.locks = locks

    def _inputs(self, threads: Asking) -> list[PendingInput]:
        """The input rows of the asking ``threads``, their schemas from the definition."""
        return pending_inputs(self.state, threads, schemas_in(self.state, self.interpreter.bodies))

    def _write(
        self,
        record: Record,
        *,
        release: bool,
        batch: Batch = NO_BATCH,
        inputs: list[PendingInput] | None = None,
    ) -> None:
        engine = self.engine
        if self.fence is None:
            self._write_free(record, claim=not release, batch=batch, inputs=inputs)
        else:
            self.rec = engine.store.update(
                record,
                expected_version=self.rec.version,
                fence=self.fence,
                release=release,
                batch=batch,
                inputs=inputs,
            )
        if release:
            self.released = True
        else:
            self._renew()

    def _write_free(
        self, record: Record, *, claim: bool, batch: Batch, inputs: list[PendingInput] | None
    ) -> None:
        """The unleased unit's first write: only if nobody wrote or claimed since the read."""
        engine = self.engine
        owner = claim_owner(engine) if claim else None
        try:
            self.rec = engine.store.update_free(
                record,
                expected_version=self.rec.version,
                now=engine.clock(),
                owner=owner,
                lease=engine.lease if claim else None,
                batch=batch,
                inputs=inputs,
            )
        except ConflictError as exc:
            raise Contended(str(exc)) from exc
        if owner is not None:
            self.fence, self.owner = self.rec.fence, owner

    def _renew(self) -> None:
        rec, engine = self.rec, self.engine
        now = engine.clock()
        if rec.lease_expires is not None and rec.lease_expires - now < engine.lease / 2:
            assert self.fence is not None  # a write that does not release holds the lease
            self.rec = engine.store.renew(rec.id, self.owner, self.fence, engine.lease, now)

    def _record_error(self, error: str, wake: datetime) -> None:
        """Keep data and state as they are, with the error, and drop the lease.

        Data that cannot be stored as JSON (the error may be just that) leaves the last
        durable checkpoint in place, with the error.
        """
        try:
            self.save(release=True, error=error, wake=wake)
        except PydanticSerializationError:
            self._write(
                with_changes(self.rec, error=error, wake_at=wake.astimezone(UTC)), release=True
            )

    def refuse(self, error: str) -> None:
        """A move was refused for bad input — a child type not registered, an input that does
        not fit the child, ``ForEach`` items that are no list, a value from the data that a
        statement cannot take (a `DefinitionError` of a move) — so nothing of it is stored.

        What this unit did since its last write (an event delivered, moves, children to
        start, messages taken, what its steps emitted) is dropped, not written: the caller
        gets the error and the stored data and state are as they were. Only an instance that
        is due without this unit (it was resuming, its wake-up time has come, or it had taken
        messages from its inbox) gets a write, of the error alone: the messages kept for
        later, the next try after the error backoff, data and state as stored — else every
        poll would run into the same refusal at once.
        """
        taken = self.family.discard()
        self.emitting.pending.clear()  # their steps' checkpoints are dropped: they run again
        if self.history.notes is not None:  # nothing of it happened, as far as anyone stored
            self.history.notes.clear()
        self.pending = False
        rec, engine = self.rec, self.engine
        due = (
            rec.status in (WorkflowStatus.RESUMING.value, WorkflowStatus.COMPENSATING.value)
            or (rec.wake_at is not None and rec.wake_at <= self.now)
            or bool(taken)
        )
        if due:
            wake = (self.now + engine.error_backoff).astimezone(UTC)
            record = with_changes(rec, error=error, wake_at=wake)
            self._write(record, release=True, batch=Batch(keep=taken))
        elif self.fence is not None:
            engine.store.release(rec.id, self.owner, self.fence)
            self.released = True

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


def _thread_error(index: ThreadIndex) -> str | None:
    """The latest failure a thread is retrying, as "thread/step: message"."""
    thread = index.first_error()
    if thread is None:
        return None
    return f"{thread.id}/{thread.cur_step} (attempt {thread.attempt}): {thread.last_error}"

"""How a unit of work writes: data, state and what rides with them, compare-and-set.

A mixin of `stmtflow.runtime._unit.Unit` (`UnitWrites`), which re-exports `Contended` and
`wake_at` from here: a unit's `save` (the record, its inputs, history, lock claims and the
messages of its family and outbox in one write), the leased and the unleased write, renewing
the lease, recording an error, and `refuse` (a refused move stores nothing of it). Each write
stores `wake_at`, when the instance needs the engine next.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic_core import PydanticSerializationError

from stmtflow.core._interpreter import Interpreter
from stmtflow.core._thread_index import ThreadIndex
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import ConflictError
from stmtflow.runtime._claim import claim_owner
from stmtflow.runtime._family import Family
from stmtflow.runtime._history import HistoryLog
from stmtflow.runtime._inputs import Asking, asking, pending_inputs, same_asking, schemas_in
from stmtflow.runtime._locks import changed_claims, claims_of
from stmtflow.runtime._outbox import Emitting
from stmtflow.state import TERMINAL_STATUSES, State, WorkflowStatus, dump_state
from stmtflow.stores import PendingInput, Record
from stmtflow.stores._locks import LockClaim
from stmtflow.stores.base import NO_BATCH, Batch, with_changes

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine

__all__ = ["Contended", "UnitWrites", "wake_at"]


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


class UnitWrites:
    """`save`, `refuse` and the writes under them: the `Unit` methods that store progress."""

    engine: Engine
    rec: Record
    fence: int | None
    owner: str
    wf: WorkflowState
    state: State
    now: datetime
    saved: tuple[str, str]
    pending: bool
    released: bool
    family: Family
    emitting: Emitting
    interpreter: Interpreter
    asking: Asking
    locks: tuple[LockClaim, ...]
    history: HistoryLog

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


def _thread_error(index: ThreadIndex) -> str | None:
    """The latest failure a thread is retrying, as "thread/step: message"."""
    thread = index.first_error()
    if thread is None:
        return None
    return f"{thread.id}/{thread.cur_step} (attempt {thread.attempt}): {thread.last_error}"

"""`Engine`: the interpreter and a store, tied together so that nothing is lost.

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
at the end.

Example:
    >>> import stmtflow as sf
    >>> class Greet(sf.WorkflowState):
    ...     greeted: bool = False
    ...     def definition(self):
    ...         return sf.S(sf.Step("greet", self.greet))
    ...     def greet(self):
    ...         self.greeted = True
    >>> engine = Engine("memory://", workflows=[Greet])
    >>> inst = engine.start(Greet, id="g-1")
    >>> inst.status.value, inst.data.greeted
    ('finished', True)
"""

from __future__ import annotations

import builtins
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from stmtflow.core._drivers import drive, restart
from stmtflow.core._interpreter import Call, Interpreter
from stmtflow.core._program import Program
from stmtflow.core._thread_index import ThreadIndex
from stmtflow.core._timers import due_timers, timer_deadline
from stmtflow.dsl._handlers import FunctionHandler
from stmtflow.dsl._statements import RetryPolicy
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import ConflictError, StepLimitExceeded, StmtflowError
from stmtflow.state import (
    CallbackRequest,
    CheckpointType,
    State,
    ThreadStatus,
    WorkflowStatus,
    dump_interpreted,
    load_state,
    new_state,
)
from stmtflow.stores import Record, Store, open_store
from stmtflow.stores.base import with_changes

__all__ = ["Engine", "Instance", "PendingEvent", "WorkerStats"]

_log = logging.getLogger("stmtflow.worker")

DEFAULT_RETRY = RetryPolicy()
"""The policy of steps without one, unless the engine is given another."""

_TERMINAL = (WorkflowStatus.FINISHED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)

_WARM_LIMIT = 64
"""How many instances' parsed states an engine keeps for its next unit on them."""


_MOVES = (CheckpointType.AFTER_RESUME, CheckpointType.AFTER_CONDITION)
"""Checkpoints of scheduling moves (see `_Unit.checkpoint`)."""

_RESUMING = WorkflowStatus.RESUMING  # a module constant: read on every save


class _Contended(Exception):
    """An unleased write found the record changed or leased: redo the work under a lease."""


@dataclass(frozen=True, slots=True)
class Instance:
    """A stored workflow instance, loaded.

    Attributes:
        id: the instance id.
        workflow: the workflow type name.
        status: where the execution stands.
        data: the workflow data (an instance of the registered class).
        state: the execution state.
        version: the record's version (+1 per write).
        wake_at: when the engine will next wake it (a timer or a retry), if ever.
        error: the last error, if any (a failed step, or an error the engine met running it).
    """

    id: str
    workflow: str
    status: WorkflowStatus
    data: WorkflowState
    state: State
    version: int
    wake_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event an instance waits for.

    Attributes:
        name: the event name to send.
        thread_id: the waiting thread.
        type: the handler type (``FunctionHandler``, ``Timer``, ...).
        input_schema: JSON Schema of the input (for function handlers), else None.
        deadline: when a timer fires, else None.
        status: the event's setup status (``setup``, ``setup_error``, ...).
    """

    name: str
    thread_id: str
    type: str
    input_schema: dict[str, Any] | None
    deadline: datetime | None
    status: str


@dataclass(slots=True)
class WorkerStats:
    """Counters a worker keeps (shown by ``stmtflow worker``)."""

    processed: int = 0
    """Instances a tick worked on."""
    fired: int = 0
    """Timers fired, retries run and crashed work recovered."""
    failed: int = 0
    """Units that ended in an error (recorded on the instance)."""
    last_error: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class Engine:
    """Runs workflow instances kept in a store.

    Args:
        store: a `Store`, or a store URL (default ``sqlite:///stmtflow.db``).
        workflows: workflow classes to register, each under its class name (or its
            ``workflow_name`` class attribute).
        default_retry: the policy of steps without one (None: a failing step without a policy
            leaves the instance where it is, with the error recorded, until a later tick).
        lease: how long a claim on an instance lasts (renewed while work goes on).
        owner: this engine's lease owner name (default host:pid:random).
        max_steps: actions one unit may run (`StepLimitExceeded` beyond, then a later tick
            continues).
        error_backoff: how long an instance that met an error waits before the next try.

    Example:
        >>> engine = Engine("memory://")
        >>> engine.list()
        []
    """

    def __init__(
        self,
        store: Store | str | None = None,
        workflows: builtins.list[type[WorkflowState]] | tuple[type[WorkflowState], ...] = (),
        *,
        default_retry: RetryPolicy | None = DEFAULT_RETRY,
        lease: timedelta = timedelta(seconds=60),
        owner: str | None = None,
        max_steps: int = 10_000,
        error_backoff: timedelta = timedelta(seconds=30),
    ) -> None:
        self.store: Store = open_store(store) if isinstance(store, str) else store or open_store()
        self.default_retry = default_retry
        self.lease = lease
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.max_steps = max_steps
        self.error_backoff = error_backoff
        self._classes: dict[str, type[WorkflowState]] = {}
        self._warm: dict[str, tuple[str, State, type[WorkflowState], ThreadIndex]] = {}
        for cls in workflows:
            self.register(cls)

    # -- registration -----------------------------------------------------------------------------

    @staticmethod
    def type_name(cls: type[WorkflowState]) -> str:
        """The name a workflow class is registered and stored under."""
        name = getattr(cls, "workflow_name", None)
        return name if isinstance(name, str) and name else cls.__name__

    def register(self, cls: type[WorkflowState], *, target: str | None = None) -> str:
        """Register a workflow class; ``target`` (``file.py:Class``) is remembered in the store."""
        if not (isinstance(cls, type) and issubclass(cls, WorkflowState)):
            raise TypeError(f"expected a WorkflowState subclass, got {cls!r}")
        name = self.type_name(cls)
        self._classes[name] = cls
        if target is not None:
            self.store.set_target(name, target)
        return name

    def workflow_class(self, workflow: str | type[WorkflowState]) -> type[WorkflowState]:
        """The registered class for a name (or the class itself, registering it)."""
        if isinstance(workflow, type):
            self.register(workflow)
            return workflow
        cls = self._classes.get(workflow)
        if cls is None:
            known = ", ".join(sorted(self._classes)) or "none"
            raise StmtflowError(
                f"workflow type {workflow!r} is not registered with this engine "
                f"(registered: {known})"
            )
        return cls

    # -- reading ----------------------------------------------------------------------------------

    def _load(self, rec: Record) -> tuple[WorkflowState, State]:
        cls = self.workflow_class(rec.workflow)
        return cls.model_validate_json(rec.data), load_state(rec.state)

    def _instance(self, rec: Record) -> Instance:
        wf, state = self._load(rec)
        return Instance(
            id=rec.id,
            workflow=rec.workflow,
            status=WorkflowStatus(rec.status),
            data=wf,
            state=state,
            version=rec.version,
            wake_at=rec.wake_at,
            error=rec.error,
        )

    def get(self, id: str) -> Instance:
        """The stored instance. Raises `NotFound` for an unknown id."""
        return self._instance(self.store.get(id))

    def list(
        self, status: str | WorkflowStatus | None = None, workflow: str | None = None
    ) -> builtins.list[Instance]:
        """Stored instances, oldest first, optionally filtered by status and type."""
        value = WorkflowStatus(status).value if status is not None else None
        return [self._instance(r) for r in self.store.list(status=value, workflow=workflow)]

    def pending(self, id: str) -> builtins.list[PendingEvent]:
        """The events instance ``id`` waits for, with input schemas and timer deadlines."""
        wf, state = self._load(self.store.get(id))
        if state.status in _TERMINAL:
            return []
        program = Program(wf.definition(), type(wf), f"workflow {id!r}")
        events = []
        for thread in state.threads:
            if thread.status is not ThreadStatus.WAITING_EVENT or thread.cur_callback:
                continue
            for event in thread.wait_events:
                found = program.find_event(event.req.name)
                handler = program.handler(event.req.name) if found else None
                schema = handler.schemas()[0] if isinstance(handler, FunctionHandler) else None
                events.append(
                    PendingEvent(
                        name=event.req.name,
                        thread_id=thread.id,
                        type=event.type,
                        input_schema=schema,
                        deadline=timer_deadline(event),
                        status=event.status.value,
                    )
                )
        return events

    # -- units of work ----------------------------------------------------------------------------

    def _wake_at(self, state: State, index: ThreadIndex, now: datetime) -> datetime | None:
        """When the instance needs the engine next: due work, or a retry of a failed setup.

        ``index`` files ``state``'s threads: it answers what `stmtflow.core._timers.wakeups` reads
        off them, without a pass over every thread.
        """
        if state.status is _RESUMING:
            return now
        wake, failed_setup = index.wakeups()
        later = now + self.error_backoff if failed_setup or state.teardowns else None
        if state.status in _TERMINAL:
            return later
        return min((t for t in (wake, later) if t is not None), default=None)

    def _load_warm(self, rec: Record) -> tuple[WorkflowState, State, ThreadIndex | None]:
        """Like `_load`, but reuse the `State` this engine's last unit on ``rec`` ended with.

        It is reused only if the stored state is byte for byte what that unit wrote and the
        type is still registered to the same class: then it is what parsing would give, and it
        fits the definition (an interpreter of that class left it), without parsing and
        checking a document that grows with the threads. The data is always parsed: user code
        may hold on to its object. A reused state comes with the `ThreadIndex` its unit's
        interpreter kept (else None).
        """
        warm = self._warm.pop(rec.id, None)
        cls = self.workflow_class(rec.workflow)
        if warm is None or warm[0] != rec.state or warm[2] is not cls:
            return *self._load(rec), None
        return cls.model_validate_json(rec.data), warm[1], warm[3]

    def _keep_warm(self, unit: _Unit) -> None:
        """Remember a finished unit's state for the next unit on the same record."""
        warm = self._warm
        warm.pop(unit.rec.id, None)
        if len(warm) >= _WARM_LIMIT:
            warm.pop(next(iter(warm)), None)
        warm[unit.rec.id] = (unit.saved[1], unit.state, type(unit.wf), unit.interpreter.index)

    @contextmanager
    def _unit(self, rec: Record, now: datetime, *, leased: bool = True) -> Iterator[_Unit]:
        """Work on a record; a lease held or taken is released at the end, whatever happens."""
        wf, state, index = self._load_warm(rec)
        unit = _Unit(self, rec, wf, state, now, leased=leased, index=index)
        try:
            yield unit
        finally:
            if not unit.released and unit.fence is not None:
                self.store.release(rec.id, unit.owner, unit.fence)

    def _claim_owner(self) -> str:
        """A lease owner name for one claim of this engine.

        A store lets an owner re-claim its own live lease: each claim gets a name of its own,
        so two units of this engine (two threads sending to one instance) exclude each other.
        """
        return f"{self.owner}#{uuid.uuid4().hex[:6]}"

    def _claim(self, id: str, wait: timedelta = timedelta(seconds=10)) -> Record:
        """Claim one instance, waiting a little while another worker holds it."""
        deadline = time.monotonic() + wait.total_seconds()
        delay = 0.01
        owner = self._claim_owner()
        while True:
            try:
                return self.store.claim(id, owner, self.lease, _now())
            except ConflictError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def start(
        self,
        workflow: str | type[WorkflowState],
        data: WorkflowState | dict[str, Any] | None = None,
        *,
        id: str | None = None,
    ) -> Instance:
        """Create an instance and run it until it blocks.

        The same ``id`` twice returns the existing instance and runs nothing again.

        Raises:
            StmtflowError: the workflow type is not registered.
            ValueError: ``data`` does not fit the workflow's fields (nothing is stored).
        """
        cls = self.workflow_class(workflow)
        name = self.type_name(cls)
        if isinstance(data, cls):
            wf = data
        else:
            try:
                wf = cls.model_validate(data or {})
            except ValidationError as exc:
                raise ValueError(f"invalid data for workflow {name}: {exc}") from exc
        id = id or uuid.uuid4().hex
        try:
            return self.get(id)
        except LookupError:
            pass
        # An invalid definition is refused before anything is stored.
        Program(wf.definition(), cls, f"workflow {id!r} ({name})")
        now = _now()
        state = new_state(id, name)
        record = Record(
            id=id,
            workflow=name,
            data=wf.model_dump_json(),
            state=state.model_dump_json(),
            status=state.status.value,
            wake_at=now,
            lease_owner=self.owner,
            lease_expires=now + self.lease,
        )
        try:
            rec = self.store.create(record)
        except ConflictError:
            return self.get(id)
        with self._unit(rec, now) as unit:
            unit.run()
            unit.finish()
        return self.get(id)

    def send(
        self,
        id: str,
        event: str,
        input: Any = None,
        *,
        thread_id: str | None = None,
    ) -> Any:
        """Deliver an event, then run the instance until it blocks; returns the handler's output.

        Load, ``handle_callback``, ``resume`` and persist form one atomic unit: without a
        claim when nobody holds the instance (one compare-and-set write, which also takes the
        lease if a step, setup or teardown is to run), else under a claimed lease. A refused
        callback (unknown event, bad input, finished workflow, ...) changes nothing.
        """
        req = CallbackRequest(workflow_id=id, thread_id=thread_id or "", name=event)
        now = _now()
        rec = self.store.get(id)
        if not rec.lease_live(now):
            try:
                return self._send_free(rec, req, input, now)
            except _Contended:
                pass  # another writer came between the read and the write: take the lease
        with self._unit(self._claim(id), now) as unit:
            output = unit.deliver(req, input)
            unit.run()
            unit.finish()
        return output

    def _send_free(self, rec: Record, req: CallbackRequest, input: Any, now: datetime) -> Any:
        """Deliver without claiming first: one commit when the delivery runs no user code.

        The handler runs on the record as read; the first write is compare-and-set on the
        version and on nobody holding a live lease. If user code must run after the event (an
        action, a setup, a teardown), that first write also takes the lease, so no step ever runs
        unleased. A write that loses the race raises `_Contended` and nothing was stored.
        """
        with self._unit(rec, now, leased=False) as unit:
            output = unit.deliver(req, input)
            unit.run()
            unit.finish()
        return output

    def cancel(self, id: str) -> Instance:
        """End the instance: pending events torn down, status ``cancelled``."""
        now = _now()
        with self._unit(self._claim(id), now) as unit:
            unit.cancel()
            unit.finish()
        return self.get(id)

    def restart(self, id: str) -> Instance:
        """Give a ``failed`` instance's failed step a fresh set of attempts and run it."""
        now = _now()
        with self._unit(self._claim(id), now) as unit:
            restart(unit.state)
            unit.interpreter.state_changed()
            unit.pending = True
            unit.run()
            unit.finish()
        return self.get(id)

    def tick(self, now: datetime | None = None, *, limit: int = 100) -> int:
        """Fire due timers and run due retries (and work a crashed worker left); how many.

        Each due instance is claimed under a lease, so several workers can tick at once.
        """
        return self._tick(now or _now(), limit, WorkerStats())

    def _tick(self, now: datetime, limit: int, stats: WorkerStats) -> int:
        count = 0
        seen: set[str] = set()
        while True:
            batch = self.store.claim_due(now, self.owner, self.lease, limit)
            fresh = [r for r in batch if r.id not in seen]
            for rec in batch:
                if rec.id in seen:
                    self.store.release(rec.id, self.owner, rec.fence)
            if not fresh:
                return count
            for rec in fresh:
                seen.add(rec.id)
                # A batch is worked one record at a time: by its turn, a record's lease may
                # have lapsed and been taken over. Renewing checks the fence before any step
                # runs, so a step is not run by a worker whose checkpoint would be refused.
                # Only a lease that is about to lapse can be lost: renew just those.
                if rec.lease_expires is None or rec.lease_expires - _now() < self.lease / 2:
                    try:
                        rec = self.store.renew(rec.id, self.owner, rec.fence, self.lease, _now())
                    except ConflictError:
                        continue
                stats.processed += 1
                try:
                    fired = self._work_due(rec, now)
                except (StmtflowError, ValidationError) as exc:
                    stats.failed += 1
                    stats.last_error = f"{rec.id}: {exc}"
                    continue
                count += fired
                stats.fired += fired

    def _work_due(self, rec: Record, now: datetime) -> int:
        with self._unit(rec, now) as unit:
            fired = 0
            state = unit.state
            if state.status is WorkflowStatus.RESUMING or any(
                t.status is ThreadStatus.EXECUTING and t.retry_at and t.retry_at <= now
                for t in state.threads
            ):
                fired += 1
            unit.run()
            while state.status not in _TERMINAL and (due := due_timers(state, now)):
                unit.deliver(due[0], None)
                unit.run()
                fired += 1
            unit.finish()
            return fired

    def run_worker(
        self,
        *,
        concurrency: int = 1,
        poll_interval: float = 0.5,
        stop: threading.Event | None = None,
        on_tick: Callable[[WorkerStats], None] | None = None,
        handle_signals: bool = True,
    ) -> WorkerStats:
        """Tick until stopped: ``stop`` is set, or SIGINT/SIGTERM (the current unit finishes).

        ``concurrency`` threads tick side by side (each claims its own instances).
        ``on_tick`` is called with the running counters after every tick (for a display).
        """
        stop = stop or threading.Event()
        stats = WorkerStats()
        lock = threading.Lock()
        restore = _install_signals(stop) if handle_signals else None

        def loop() -> None:
            while not stop.is_set():
                local = WorkerStats()
                try:
                    # Small batches: a claimed record waits for the ones before it, and other
                    # workers can take what this one has not claimed yet.
                    self._tick(_now(), 4, local)
                except Exception as exc:
                    # E.g. the database went away: the worker keeps going and retries after a
                    # pause; the lease of whatever it held lapses and another worker takes over.
                    _log.warning("worker tick failed: %s", exc, exc_info=True)
                    local.failed += 1
                    local.last_error = f"{type(exc).__name__}: {exc}"
                    stop.wait(poll_interval)
                with lock:
                    stats.processed += local.processed
                    stats.fired += local.fired
                    stats.failed += local.failed
                    stats.last_error = local.last_error or stats.last_error
                    if on_tick is not None:
                        on_tick(stats)
                if not local.processed:
                    stop.wait(poll_interval)

        try:
            threads = [threading.Thread(target=loop, daemon=True) for _ in range(concurrency - 1)]
            for t in threads:
                t.start()
            loop()
            for t in threads:
                t.join()
        finally:
            if restore is not None:
                restore()
        return stats

    def due_count(self, now: datetime | None = None) -> int:
        """How many instances are due now (for a worker display)."""
        return self.store.count_due(now or _now())

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Unit:
    """One unit of work on a record, persisted compare-and-set.

    Effects are written at the latest before the next call into user code (an action, a
    handler, a setup or teardown) and at the end of the unit, where the last write also drops
    the lease; moves ride along. So no user code ever runs after an effect that is not durable,
    and a unit costs one commit per step plus one at the end, not one per checkpoint.

    A leased unit works on a claimed record, its writes fenced by the claim. An unleased one
    (``leased=False``, an optimistic `Engine.send`) works on a record as read: its first write
    requires that nobody holds a live lease and, if user code is about to run, takes the lease
    in the same commit; losing that race raises `_Contended` with nothing stored.
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
        # A reused state (it comes with its index) is one an interpreter of this class left.
        self.interpreter = Interpreter(
            wf, state, now, engine.default_retry, checked=index is not None, index=index
        )

    def save(
        self,
        *,
        release: bool = False,
        error: str | None = None,
        wake_at: datetime | None = None,
        data_json: bytes | None = None,
    ) -> None:
        """Write data and state (if they changed, or to release, claim or record an error).

        ``data_json``: the data as JSON, when the caller has it serialised already.
        """
        self.pending = False
        data = self.wf.model_dump_json() if data_json is None else data_json.decode()
        state = dump_interpreted(self.state)
        unchanged = (data, state) == self.saved and error is None and self.rec.error is None
        if unchanged and not release and self.fence is not None:
            return
        engine = self.engine
        index = self.interpreter.index
        wake_at = wake_at or engine._wake_at(self.state, index, self.now)
        record = with_changes(
            self.rec,
            data=data,
            state=state,
            status=self.state.status.value,
            wake_at=None if wake_at is None else wake_at.astimezone(UTC),
            error=error or self.state.error or _thread_error(index),
        )
        if self.fence is None:
            self._save_free(record, claim=not release)
        else:
            self.rec = engine.store.update(
                record, expected_version=self.rec.version, fence=self.fence, release=release
            )
        self.saved = (data, state)
        if release:
            self.released = True
        else:
            self._renew()

    def _save_free(self, record: Record, *, claim: bool) -> None:
        """The unleased unit's first write: only if nobody wrote or claimed since the read."""
        engine = self.engine
        owner = engine._claim_owner() if claim else None
        try:
            self.rec = engine.store.update_free(
                record,
                expected_version=self.rec.version,
                now=_now(),
                owner=owner,
                lease=engine.lease if claim else None,
            )
        except ConflictError as exc:
            raise _Contended(str(exc)) from exc
        if owner is not None:
            self.fence, self.owner = self.rec.fence, owner

    def _renew(self) -> None:
        rec, engine = self.rec, self.engine
        if rec.lease_expires is not None and rec.lease_expires - _now() < engine.lease / 2:
            assert self.fence is not None  # a write that does not release holds the lease
            self.rec = engine.store.renew(rec.id, self.owner, self.fence, engine.lease, _now())

    def checkpoint(self, kind: CheckpointType) -> None:
        # A scheduling move runs no user code with effects: recomputed identically from the
        # durable data and state after a crash, it need not be written before the next call,
        # only with the next effect or at the end of the unit.
        if kind not in _MOVES:
            self.pending = True

    def flush(self, call: Call) -> None:
        """Make recorded progress durable (called before each call into user code).

        An unleased unit always writes here: user code other than the event's handler runs
        only under a lease, and this write takes it. The data written is the data the call
        finds: its snapshot, if the interpreter took one.
        """
        if self.pending or self.fence is None:
            self.save(data_json=call.data)

    def deliver(self, req: CallbackRequest, input: Any) -> Any:
        """Run the event's handler and record that it fired; a refusal changes nothing."""
        output = drive(self.interpreter.callback(req, input), None, self.now)
        self.pending = True
        return output

    def cancel(self) -> None:
        drive(self.interpreter.cancel(), self.checkpoint, self.now, self.flush)

    def run(self) -> None:
        """Resume until blocked; an error is recorded on the instance, then raised."""
        engine = self.engine
        try:
            drive(self.interpreter.resume(engine.max_steps), self.checkpoint, self.now, self.flush)
        except ConflictError:
            raise
        except StmtflowError as exc:
            # Data and state are as at the last checkpoint: keep them, record why, and come
            # back later (at once for a step limit: the loop is long, not broken).
            limit = isinstance(exc, StepLimitExceeded)
            later = self.now if limit else self.now + engine.error_backoff
            self.save(release=True, error=str(exc), wake_at=later)
            raise

    def finish(self) -> None:
        """The unit's last write: whatever is left, and the lease dropped."""
        self.save(release=True)
        self.engine._keep_warm(self)


def _thread_error(index: ThreadIndex) -> str | None:
    """The latest failure a thread is retrying, as "thread/step: message"."""
    thread = index.first_error()
    if thread is None:
        return None
    return f"{thread.id}/{thread.cur_step} (attempt {thread.attempt}): {thread.last_error}"


def _install_signals(stop: threading.Event) -> Callable[[], None] | None:
    import signal

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore

"""`Engine`: the interpreter and a store, tied together so that nothing is lost.

The engine is a facade over three parts, each in a module of its own: the unit of work (load,
interpret, save under a lease with fenced compare-and-set writes: `stmtflow.runtime._unit`,
where the rules of when progress is written are explained), the worker (`tick`, `run_worker`
and signals: `stmtflow.runtime._worker`) and the read models it answers with (`Instance`,
`PendingEvent`, `WorkerStats`: `stmtflow.runtime._reads`). Its methods that only read
(`stmtflow.runtime._reading`), those of the outbox (`stmtflow.runtime._outbox`) and its async
entry points (`stmtflow.runtime._async`) are mixins kept beside what they call, as the
operations (`stmtflow.runtime._operations`) and schedules (`stmtflow.runtime._scheduling`) are.

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
import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from stmtflow.core._drivers import restart
from stmtflow.core._program import Program
from stmtflow.dsl._child import workflow_type_name
from stmtflow.dsl._statements import RetryPolicy
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import ConflictError, NotWaiting, StaleCallback, StmtflowError, UnknownCallback
from stmtflow.runtime import _worker
from stmtflow.runtime._async import AsyncCalls, AsyncSupport
from stmtflow.runtime._family import chain, follow_up
from stmtflow.runtime._history import HistorySettings
from stmtflow.runtime._inbox import buffer_event, unknown_children
from stmtflow.runtime._operations import Operations
from stmtflow.runtime._outbox import DEFAULT_OUTBOX_RETRY, Delivery, OutboxCalls, Sink
from stmtflow.runtime._reading import Reading
from stmtflow.runtime._reads import Instance, PendingEvent, WorkerStats
from stmtflow.runtime._scheduling import Scheduling
from stmtflow.runtime._unit import Contended, claim, open_unit
from stmtflow.runtime._warm import WarmStates
from stmtflow.state import (
    CallbackRequest,
    CheckpointType,
    State,
    new_state,
)
from stmtflow.stores import PendingInput, Record, Store, open_store
from stmtflow.stores._history import HistoryStore
from stmtflow.stores.base import utcnow

__all__ = ["Engine", "Instance", "PendingEvent", "PendingInput", "WorkerStats"]


DEFAULT_RETRY = RetryPolicy()
"""The policy of steps without one, unless the engine is given another."""

CheckpointObserver = Callable[[CheckpointType, WorkflowState, State], None]
"""Called after every checkpoint of every unit with its kind, the data and the state."""


class Engine(Operations, Scheduling, Reading, OutboxCalls, AsyncCalls):
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
        clock: what the engine reads the time from (aware datetimes; default the current UTC
            time): the ``now`` of every unit, lease and wake-up. A test passes a fake one.
        on_checkpoint: called after every checkpoint of every unit with its kind, the data and
            the state, as the interpreter left them (to trace or check them, not to change
            them). What it raises ends the unit like an error of the workflow's code.
        sinks: where the messages steps `emit` are delivered, at least once, after the commit
            that stores them and on every `tick`: callables taking an `OutboxMessage`, such as
            `RedisStreamSink` and `NatsSink` (docs/operations.md, "Outbox"). Without sinks,
            messages stay in the store's outbox for an engine that has some.
        outbox_retry: the backoff between failed deliveries of a message (its
            ``max_attempts`` is not used: a committed message is never given up).
        history: keep each instance's history (`Engine.history`), written with its
            progress. None (the default): kept where the store can (memory, SQLite,
            PostgreSQL); True on a store that cannot is a `StmtflowError`.
        history_limit: events kept per instance (the oldest are dropped); 0 keeps none.
        snapshots: for how many of the latest events of an instance to keep the data and
            state, to `rewind` or `fork` to (0: none; docs/operations.md says what it costs).
        retention: how long ended instances are kept before `prune` deletes them, for classes
            without a ``retention`` of their own (None: kept until pruned by hand).
        prune_interval: how often the worker prunes (one small batch per type).

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
        clock: Callable[[], datetime] = utcnow,
        on_checkpoint: CheckpointObserver | None = None,
        sinks: Sequence[Sink] = (),
        outbox_retry: RetryPolicy = DEFAULT_OUTBOX_RETRY,
        history: bool | None = None,
        history_limit: int = 1000,
        snapshots: int = 20,
        retention: timedelta | None = None,
        prune_interval: timedelta = timedelta(minutes=1),
    ) -> None:
        self.store: Store = open_store(store) if isinstance(store, str) else store or open_store()
        keeps = isinstance(self.store, HistoryStore)
        if history and not keeps:
            raise StmtflowError(
                f"the {type(self.store).__name__} keeps no history (it is no HistoryStore): use "
                "one of stmtflow's stores, or Engine(history=False)"
            )
        self._history = HistorySettings(
            keeps if history is None else history, history_limit, snapshots
        )
        self.retention = retention
        self.prune_interval = prune_interval
        self._prune_lock = threading.Lock()
        self._pruned_at = float("-inf")
        self.default_retry = default_retry
        self.lease = lease
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.max_steps = max_steps
        self.error_backoff = error_backoff
        self.clock = clock
        self.on_checkpoint = on_checkpoint
        self._classes: dict[str, type[WorkflowState]] = {}
        self.resolve: Callable[[str], type[WorkflowState] | None] | None = None
        """Called with a type name this engine does not know (a child's or a parent's met in a
        follow-up unit); a class it returns is registered. The CLI imports remembered targets."""
        self._warm = WarmStates()
        self._local = threading.local()
        self.outbox = Delivery(self.store, sinks, retry=outbox_retry)
        """Delivers what steps emitted to ``sinks`` (`stmtflow.runtime._outbox`)."""
        self._async = AsyncSupport()
        for cls in workflows:
            self.register(cls)

    # -- registration -----------------------------------------------------------------------------

    @staticmethod
    def type_name(cls: type[WorkflowState]) -> str:
        """The name a workflow class is registered and stored under."""
        return workflow_type_name(cls)

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
        if cls is None and self.resolve is not None:
            cls = self.resolve(workflow)
            if cls is not None:
                self.register(cls)
        if cls is None:
            known = ", ".join(sorted(self._classes)) or "none"
            raise StmtflowError(
                f"workflow type {workflow!r} is not registered with this engine "
                f"(registered: {known})"
            )
        return cls

    # -- units of work ----------------------------------------------------------------------------

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
        # An invalid definition, or a child type nobody registered, is refused before anything
        # is stored.
        where = f"workflow {id!r} ({name})"
        program = Program(wf.definition(), cls, where)
        unknown_children(self, program.root, where)
        now = self.clock()
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
        with self._chain(), open_unit(self, rec, now) as unit:
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
        buffer: bool = False,
        key: str | None = None,
    ) -> Any:
        """Deliver an event, then run the instance until it blocks; returns the handler's output.

        Load, ``handle_callback``, ``resume`` and persist form one atomic unit: without a
        claim when nobody holds the instance (one compare-and-set write, which also takes the
        lease if a step, setup or teardown is to run), else under a claimed lease. A refused
        callback (unknown event, bad input, finished workflow, ...) changes nothing.

        ``buffer=True``: an event no thread waits on yet (the instance's definition has it,
        and its input fits the handler's schema) is kept in the instance's inbox and delivered,
        in arrival order, as soon as a wait arms it; the call then returns None. ``key``
        deduplicates: a send with a key the instance has seen (delivered or kept) does nothing
        and returns None.
        """
        with self._chain():
            if key is not None and self.store.known_key(id, key):
                return None
            try:
                return self._send(id, event, input, thread_id, key)
            except (UnknownCallback, StaleCallback, NotWaiting):
                if not buffer:
                    raise
            buffer_event(self, id, event, input, thread_id, key)
            return None

    def _send(self, id: str, event: str, input: Any, thread_id: str | None, key: str | None) -> Any:
        req = CallbackRequest(workflow_id=id, thread_id=thread_id or "", name=event)
        now = self.clock()
        rec = self.store.get(id)
        if not rec.lease_live(now):
            try:
                return self._send_free(rec, req, input, now, key)
            except Contended:
                pass  # another writer came between the read and the write: take the lease
        with open_unit(self, claim(self, id), now) as unit:
            if key is not None and self.store.known_key(id, key):
                return None  # a send with the same key won the race
            output = unit.deliver(req, input)
            if key is not None:
                unit.family.keys.append(key)
            unit.run()
            unit.finish()
        return output

    def _send_free(
        self, rec: Record, req: CallbackRequest, input: Any, now: datetime, key: str | None
    ) -> Any:
        """Deliver without claiming first: one commit when the delivery runs no user code.

        The handler runs on the record as read; the first write is compare-and-set on the
        version and on nobody holding a live lease. If user code must run after the event (an
        action, a setup, a teardown), that first write also takes the lease, so no step ever runs
        unleased. A write that loses the race raises `Contended` and nothing was stored.
        """
        with open_unit(self, rec, now, leased=False) as unit:
            output = unit.deliver(req, input)
            if key is not None:
                unit.family.keys.append(key)
            unit.run()
            unit.finish()
        return output

    def cancel(self, id: str, *, cascade: bool = True, compensate: bool = False) -> Instance:
        """End the instance: pending events torn down, status ``cancelled``.

        With ``compensate``, the compensations of its completed steps run first, latest first
        (status ``compensating`` meanwhile; one waiting for a retry is run by a later `tick`).
        With ``cascade`` (the default), every running child it started with
        ``on_parent_end="cancel"`` (a `Call`, a `Child` so made) is cancelled too, and theirs in
        turn, depth first; ``abandon`` children and `Start`ed ones run on. Each child's
        cancellation is a message committed with its parent's; this call runs them before it
        returns (a worker would otherwise).
        """
        now = self.clock()
        with self._chain(), open_unit(self, claim(self, id), now) as unit:
            unit.family.cascade = cascade
            unit.cancel(compensate=compensate)
            unit.finish()
        return self.get(id)

    def restart(self, id: str) -> Instance:
        """Give a ``failed`` instance's failed step a fresh set of attempts and run it."""
        now = self.clock()
        with self._chain(), open_unit(self, claim(self, id), now) as unit:
            restart(unit.state)
            unit.interpreter.state_changed()
            unit.pending = True
            unit.run()
            unit.finish()
        return self.get(id)

    def tick(self, now: datetime | None = None, *, limit: int = 100) -> int:
        """Fire due timers, due schedules and due retries (and work a crashed worker left); how
        many.

        Each due instance is claimed under a lease, so several workers can tick at once. An
        error in one instance is recorded on it, and the tick goes on with the others. Then the
        outbox messages due are delivered to the sinks (`deliver_outbox`).
        """
        return _worker.tick(self, now or self.clock(), limit, WorkerStats())

    def wake(self, id: str) -> builtins.list[str]:
        """Do now what instance ``id`` is due for, under a lease; the timer events fired.

        What `tick` does for one instance (fire its due timers in deadline order, run a due
        retry, finish work a crashed worker left), except that an error is raised (after it is
        recorded on the instance) instead of counted. An instance with nothing due is resumed,
        which re-checks its ``WaitFor`` conditions.
        """
        with self._chain(), open_unit(self, claim(self, id), self.clock()) as unit:
            done = unit.work_due()
            unit.finish()
        return done.timers

    # -- follow-ups -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _chain(self) -> Iterator[None]:
        """Within the outermost call, run the instances its units touched once it is done
        (`stmtflow.runtime._family.chain`), then deliver what their steps emitted."""
        outermost = getattr(self._local, "queue", None) is None
        with chain(self):
            yield
        if outermost and self.outbox.due:
            self.outbox.deliver(self.clock())

    def _follow_up(self, touched: builtins.list[tuple[str, str | None]]) -> None:
        """Instances a unit's write touched (`stmtflow.runtime._family.follow_up`)."""
        follow_up(self, touched)

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
        return _worker.run_worker(
            self,
            concurrency=concurrency,
            poll_interval=poll_interval,
            stop=stop or threading.Event(),
            on_tick=on_tick,
            handle_signals=handle_signals,
        )

    def due_count(self, now: datetime | None = None) -> int:
        """How many instances are due now (for a worker display)."""
        return self.store.count_due(now or self.clock())

    def close(self) -> None:
        """Close the sinks that can be closed, the threads the async entry points started, and the
        store."""
        self._async.close()
        for sink in self.outbox.sinks:
            close = getattr(sink, "close", None)
            if callable(close):
                close()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""`WorkflowHarness`: drive one workflow in memory with a fake clock.

The harness drives the production engine: an `Engine` over a memory store (``memory://``)
whose clock is the harness's, so time only moves when the test says so, and every call goes
through the same units of work (load, interpret, save under a lease) as in a service.
``advance(timedelta(days=30))`` moves the clock to each time the engine stored as the
instance's next wake-up in turn, and wakes it there: a month-long workflow runs in
milliseconds.

How the log is kept: the engine calls the harness after every checkpoint, and at each
``after_step`` one `stmtflow.testing._trace.StepTrace` reads from the state which step ran.
Nothing in the definition is wrapped or changed.

Between calls the harness holds what the store holds: ``data`` and ``state`` are loaded from
the stored JSON after every call, as the next unit of a service would load them. With
``check_json=True`` (the default) the data is also checked at every checkpoint to survive a
JSON round trip unchanged, so data that cannot be stored fails the test at the checkpoint
that produced it, not in production.

Example:
    >>> from datetime import timedelta
    >>> import stmtflow as sf
    >>> class Trial(sf.WorkflowState):
    ...     def definition(self) -> sf.Section:
    ...         return sf.S(
    ...             sf.Step("welcome", lambda: None),
    ...             sf.Sleep("trial", timedelta(days=14)),
    ...             sf.Step("convert", lambda: None),
    ...         )
    >>> h = WorkflowHarness(Trial).start()
    >>> [(p.name, p.deadline.date().isoformat()) for p in h.pending()]
    [('trial.timer', '2024-01-15')]
    >>> h.advance(timedelta(days=14))
    ['trial.timer']
    >>> h.log, h.status.value
    (['welcome', 'convert'], 'finished')
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Self, TypeVar

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from stmtflow.dsl._statements import RetryPolicy
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import HarnessError, NotFound, StmtflowError
from stmtflow.runtime import Engine, HistoryEvent, Instance, PendingEvent
from stmtflow.runtime._inputs import inputs_of
from stmtflow.state import CheckpointType, State, WorkflowStatus, new_state
from stmtflow.stores import PendingInput, Record
from stmtflow.stores._outbox import OutboxMessage
from stmtflow.testing._schedules import HarnessSchedules
from stmtflow.testing._trace import StepRun, StepTrace, compensations_run

__all__ = ["DEFAULT_START", "HarnessError", "PendingEvent", "StepRun", "WorkflowHarness"]

W = TypeVar("W", bound=WorkflowState)
T = TypeVar("T")

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
"""Where a harness's clock starts unless told otherwise: 2024-01-01 00:00 UTC."""


class WorkflowHarness(HarnessSchedules, Generic[W]):
    """Drive one workflow through the engine, in memory, with a fake clock.

    Args:
        workflow: a `WorkflowState` instance, or a class (built from ``data``).
        id: the instance id.
        start: where the fake clock starts (aware); default `DEFAULT_START`.
        data: field values for a class given as ``workflow``.
        state: an existing execution to continue instead of a new one (``id`` is then the
            state's): e.g. an instance saved under an old definition, to test that the new one
            carries it on. It is stored due at once, and the harness counts as started.
        check_json: check at every checkpoint that the data survives a JSON round trip
            unchanged (a `HarnessError` naming the checkpoint if not).
        max_steps: actions one call may run (the engine's ``max_steps``).
        default_retry: the policy of steps without one (the engine's ``default_retry``; None:
            a failing step raises `StepError`).
        workflows: further workflow classes the engine knows, e.g. the children a `Call` or
            `Start` names by type name (a child given as a class needs none). Children run in
            the same memory store, on the same fake clock: `advance` fires their timers too.

    Attributes:
        engine: the `Engine` the harness drives (a memory store, the harness's clock).
        trace: every step execution, failed attempts included, in order (`StepRun`).
        checkpoints: every checkpoint the engine's units reported, in order.
        emitted: every message the steps `emit`-ted (of children too), in the order their
            checkpoints were committed (`OutboxMessage`: ``topic``, ``value``, ``key``). A
            failed attempt's messages are not there: they were never committed.

    Read the data through ``harness.data`` after each call: it is a fresh object loaded from
    the stored JSON, not the instance passed in. Changes made to it by hand are stored before
    the next call, as an outside write would be.

    Example:
        >>> import stmtflow as sf
        >>> class Approval(sf.WorkflowState):
        ...     approved: bool = False
        ...     def definition(self) -> sf.Section:
        ...         return sf.S(sf.Wait("decide", sf.OnEvent("approve", self.approve)))
        ...     def approve(self, who: str) -> str:
        ...         self.approved = True
        ...         return f"approved by {who}"
        >>> h = WorkflowHarness(Approval).start()
        >>> h.send("approve", "ana"), h.data.approved, h.status.value
        ('approved by ana', True, 'finished')
    """

    def __init__(
        self,
        workflow: W | type[W],
        *,
        id: str = "test",
        start: datetime = DEFAULT_START,
        data: Mapping[str, Any] | None = None,
        state: State | None = None,
        check_json: bool = True,
        max_steps: int = 10_000,
        default_retry: RetryPolicy | None = None,
        workflows: Sequence[type[WorkflowState]] = (),
    ) -> None:
        if start.tzinfo is None:
            raise ValueError(
                "start must be an aware datetime, e.g. datetime(2024, 1, 1, tzinfo=UTC)"
            )
        wf: W
        if isinstance(workflow, WorkflowState):
            if data is not None:
                raise ValueError("pass data only with a workflow class, not with an instance")
            wf = workflow
        elif isinstance(workflow, type) and issubclass(workflow, WorkflowState):
            wf = workflow.model_validate(dict(data or {}))
        else:
            raise TypeError(f"expected a WorkflowState class or instance, got {workflow!r}")
        self._now = start
        self.check_json = check_json
        self.emitted: list[OutboxMessage] = []
        self.engine = Engine(
            "memory://",
            [type(wf), *workflows],
            default_retry=default_retry,
            max_steps=max_steps,
            clock=lambda: self._now,
            on_checkpoint=self._checkpoint,
            sinks=[self.emitted.append],
        )
        self._steps = StepTrace(0 if state is None else compensations_run(state))
        self.trace: list[StepRun] = self._steps.runs
        self.checkpoints: list[CheckpointType] = []
        self._wf: W = wf
        self._id = id if state is None else state.id
        self._state: State = new_state(self._id, Engine.type_name(type(wf)))
        self._started = state is not None
        self._scheduled: set[str] = set()
        self._stalled: set[tuple[str, int]] = set()
        if state is not None:
            self.engine.store.create(
                Record(
                    id=state.id,
                    workflow=Engine.type_name(type(wf)),
                    data=self._dump(wf, "the data given"),
                    state=state.model_dump_json(),
                    status=state.status.value,
                    wake_at=start,
                ),
                inputs=inputs_of(wf, state),
            )
            self._reload()

    # -- looking --------------------------------------------------------------------------------

    @property
    def data(self) -> W:
        """The workflow instance (its fields are the data), as last stored."""
        return self._wf

    @property
    def state(self) -> State:
        """The execution state, as last stored."""
        return self._state

    @property
    def status(self) -> WorkflowStatus:
        """Shortcut for ``state.status``."""
        return self._state.status

    @property
    def now(self) -> datetime:
        """The fake clock."""
        return self._now

    @property
    def log(self) -> list[str]:
        """Names of the steps whose actions succeeded, in the order they ran (a compensation
        that ran is listed as ``"{step}.compensate"``)."""
        return [run.step for run in self.trace if run.error is None]

    def pending(self) -> list[PendingEvent]:
        """The events threads wait for now, in thread order (`Engine.pending`)."""
        return self.engine.pending(self._id) if self._started else []

    def children(self) -> list[Instance]:
        """The instances this one started (`Engine.children`), oldest first."""
        return self.engine.children(self._id) if self._started else []

    @property
    def history(self) -> list[HistoryEvent]:
        """The instance's history (`Engine.history`): what the engine wrote with each
        checkpoint, on the fake clock."""
        return self.engine.history(self._id) if self._started else []

    def inputs(self) -> list[PendingInput]:
        """What people are asked for now (`Engine.inputs`): forms and escalated steps."""
        return self.engine.inputs()

    # -- driving --------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the instance (`Engine.start`): run it until every thread is blocked or it ends."""
        if self._started:
            raise HarnessError(f"workflow {self._id!r} was already started")
        self._started = True
        wf = self._wf
        try:
            self._call(lambda: self.engine.start(type(wf), wf, id=self._id), edits=False)
        except StmtflowError:
            # Started if it was stored (e.g. a step failed): refused before that, it was not.
            self._started = self._stored()
            raise
        return self

    def send(
        self,
        event: str,
        input: Any = None,
        *,
        thread_id: str | None = None,
        buffer: bool = False,
        key: str | None = None,
        to: str | None = None,
    ) -> Any:
        """Deliver ``event`` with ``input`` and run on (`Engine.send`, ``buffer`` and ``key``
        included); ``to`` names another instance of the store (a child) to send to instead.

        Returns what the event's handler returned. The library's errors (``UnknownCallback``,
        ``WorkflowFinished``, ``CallbackInputError``, ...) propagate unchanged.
        """
        if to is None:
            self._require_started("send")
        target = to or self._id
        return self._call(
            lambda: self.engine.send(
                target, event, input, thread_id=thread_id, buffer=buffer, key=key
            )
        )

    def advance(self, delta: timedelta) -> list[str]:
        """Move the clock forward by ``delta``, doing what falls due on the way.

        The clock stops at each time the engine stored as an instance's next wake-up (a timer
        deadline, a retry time, the retry of a failed setup or teardown; this instance's, a
        child's or a fire's) and wakes it there (`Engine.wake`), so what a fired timer arms is
        due later in the same ``advance`` if its deadline falls inside it. It stops too at each
        fire time of a `schedule` and starts that fire's instance, as a worker's tick does.
        Returns the names of this instance's timer events fired, in order.
        """
        if delta < timedelta(0):
            raise ValueError(f"time only moves forward; got {delta}")
        if not self._scheduled:
            self._require_started("advance")
        target = self._now + delta
        fired: list[str] = []
        self._store_edits()
        while (due := self._next_due(target)) is not None:
            wake, id = due
            self._now = max(self._now, wake)
            if id is None:
                self._fire()
                continue
            timers = self._call(lambda id=id: self.engine.wake(id), edits=False)  # type: ignore[misc]
            fired += timers if id == self._id else []
            after = self.engine.store.get(id).wake_at
            if after is not None and after <= self._now:
                raise HarnessError(
                    f"workflow {id!r}: something was due at {wake.isoformat()} "
                    "but waking it made no progress"
                )
        self._now = target
        return fired

    def _next_due(self, target: datetime) -> tuple[datetime, str | None] | None:
        """The earliest wake-up at or before ``target``: of a schedule (id None; first at the
        same time, as a tick fires before it works), else of any instance in the store."""
        fire = self._next_fire(target)
        schedule = None if fire is None else (fire, None)
        due = [
            (rec.wake_at, rec.id)
            for rec in self.engine.store.list()
            if rec.wake_at is not None and rec.wake_at <= target
        ]
        instance = min(due, default=None)
        if schedule is not None and (instance is None or schedule[0] <= instance[0]):
            return schedule
        return instance

    def resume(self) -> State:
        """Wake the instance at the current clock, e.g. after changing ``data`` by hand."""
        self._require_started("resume")
        self._call(lambda: self.engine.wake(self._id))
        return self._state

    def cancel(self, *, cascade: bool = True) -> State:
        """Cancel the instance (`Engine.cancel`) at the current clock."""
        self._require_started("cancel")
        self._call(lambda: self.engine.cancel(self._id, cascade=cascade))
        return self._state

    # -- internals ------------------------------------------------------------------------------

    def _require_started(self, what: str) -> None:
        if not self._started:
            raise HarnessError(f"call start() before {what}()")

    def _call(self, call: Callable[[], T], *, edits: bool = True) -> T:
        """Store hand edits (with ``edits``), run ``call``; afterwards (also on failure) load
        what is stored."""
        if edits:
            self._store_edits()
        self._stalled.clear()  # an instance runs: a held fire may go on after it
        try:
            return call()
        finally:
            self._reload()

    def _stored(self) -> bool:
        try:
            self.engine.store.get(self._id)
        except NotFound:
            return False
        return True

    def _store_edits(self) -> None:
        """Write the data if the test changed it by hand (nothing before the instance starts)."""
        if not self._started:
            return
        store = self.engine.store
        rec = store.get(self._id)
        text = self._dump(self._wf, "the data changed by hand")
        if text != rec.data:
            store.update(dataclasses.replace(rec, data=text), expected_version=rec.version)

    def _reload(self) -> None:
        try:
            inst = self.engine.get(self._id)
        except NotFound:  # refused before anything was stored
            return
        self._wf = inst.data  # type: ignore[assignment]  # the class registered is W
        self._state = inst.state

    def _checkpoint(self, kind: CheckpointType, wf: WorkflowState, state: State) -> None:
        if self.check_json:
            self._check_json(wf, f"workflow {state.id!r} at checkpoint {kind.value}")
        if state.id != self._id:
            return  # a child's: its own steps are not this workflow's log
        self.checkpoints.append(kind)
        if kind is CheckpointType.AFTER_STEP:
            self._steps.after_step(state, self._now)

    @staticmethod
    def _dump(wf: WorkflowState, where: str) -> str:
        try:
            return wf.model_dump_json()
        except PydanticSerializationError as exc:
            raise HarnessError(f"{where}: the data cannot be serialized to JSON: {exc}") from exc

    def _check_json(self, wf: WorkflowState, where: str) -> None:
        """Check that ``wf`` serializes and loads back to the same JSON."""
        data_json = self._dump(wf, where)
        try:
            again = type(wf).model_validate_json(data_json).model_dump_json()
        except ValidationError as exc:
            raise HarnessError(f"{where}: the data's JSON does not load back: {exc}") from exc
        if again != data_json:
            raise HarnessError(
                f"{where}: the data changes in a JSON round trip "
                f"(fields {', '.join(_differing_fields(data_json, again))}); "
                "use JSON-friendly field types"
            )


def _differing_fields(before: str, after: str) -> list[str]:
    old, new = json.loads(before), json.loads(after)
    names = sorted(set(old) | set(new))
    return [repr(name) for name in names if old.get(name) != new.get(name)] or ["(order)"]

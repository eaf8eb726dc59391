"""`WorkflowHarness`: drive one workflow in memory with a fake clock.

The harness is a tiny in-memory engine for tests. It calls the same drivers a service calls
(``resume``, ``handle_callback``, ``cancel``) with its own clock, so time only moves when the
test says so: ``advance(timedelta(days=30))`` steps through every timer deadline and retry time
in order, and a month-long workflow runs in milliseconds.

How the log is kept: at every ``after_step`` checkpoint the interpreter has just stamped the
thread that ran with the execution's new ``pc`` (DESIGN §3.12), so the thread whose ``pc`` equals
``state.pc`` is the one whose step ran, and its ``cur_step`` names the step. Nothing in the
definition is wrapped or changed.

With ``persist=True`` (the default) the harness behaves like a store: at every checkpoint it
serializes the data and the state to JSON and checks that they load back unchanged, and after
every call it continues from the saved JSON, as a service would. Data that does not survive JSON
fails the test at the checkpoint that produced it, not in production.

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

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Generic, Self, TypeVar

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from stmtflow.core._drivers import cancel, handle_callback, resume
from stmtflow.core._timers import due_timers, next_wakeup, timer_deadline
from stmtflow.dsl._handlers import Timer
from stmtflow.dsl._statements import RetryPolicy
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import StmtflowError
from stmtflow.state import (
    TERMINAL_STATUSES as TERMINAL,
)
from stmtflow.state import (
    CallbackRequest,
    CheckpointType,
    State,
    ThreadStatus,
    WorkflowStatus,
    load_state,
    new_state,
)

__all__ = ["DEFAULT_START", "HarnessError", "PendingEvent", "StepRun", "WorkflowHarness"]

W = TypeVar("W", bound=WorkflowState)
T = TypeVar("T")

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
"""Where a harness's clock starts unless told otherwise: 2024-01-01 00:00 UTC."""


class HarnessError(StmtflowError, RuntimeError):
    """The harness was misused (e.g. ``send`` before ``start``), or data failed to persist."""


@dataclass(frozen=True, slots=True)
class StepRun:
    """One execution of a step's action, as the harness saw it.

    Attributes:
        step: the step's name.
        thread: the id of the thread that ran it.
        at: the harness clock when it ran.
        attempt: 1 for the first try, 2 for the first retry, ...
        error: the failure recorded under a retry policy, or None when the action succeeded.
    """

    step: str
    thread: str
    at: datetime
    attempt: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event a thread waits for.

    Attributes:
        name: the event name (what ``send`` takes).
        thread: the waiting thread's id.
        type: the handler's type, e.g. ``Timer`` or ``FunctionHandler``.
        deadline: when a timer fires; None for other events.
    """

    name: str
    thread: str
    type: str
    deadline: datetime | None


class WorkflowHarness(Generic[W]):
    """Drive one workflow in memory with a fake clock, and look at everything it did.

    Args:
        workflow: a `WorkflowState` instance, or a class (built from ``data``).
        id: the instance id.
        start: where the fake clock starts (aware); default `DEFAULT_START`.
        data: field values for a class given as ``workflow``.
        state: an existing execution to continue instead of a new one (a copy is taken; ``id``
            is then the state's): e.g. an instance saved under an old definition, to test that
            the new one carries it on. The harness counts as started.
        persist: round-trip data and state through JSON at every checkpoint and continue from
            the saved JSON after every call, as a store would.
        max_steps: passed to ``resume``.
        default_retry: passed to ``resume``.

    Read the data through ``harness.data`` after each call: with ``persist`` it is a fresh
    object loaded from the saved JSON, not the instance passed in.

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
        persist: bool = True,
        max_steps: int = 10_000,
        default_retry: RetryPolicy | None = None,
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
        self._wf: W = wf
        self._state: State = (
            new_state(id, type(wf)) if state is None else state.model_copy(deep=True)
        )
        self._now = start
        self.persist = persist
        self.max_steps = max_steps
        self.default_retry = default_retry
        self.trace: list[StepRun] = []
        """Every step execution, failed attempts included, in order."""
        self.checkpoints: list[CheckpointType] = []
        """Every checkpoint the drivers called, in order."""
        self._started = state is not None
        self._saved: tuple[str, str] | None = None
        self._save()

    # -- looking --------------------------------------------------------------------------------

    @property
    def data(self) -> W:
        """The workflow instance (its fields are the data)."""
        return self._wf

    @property
    def state(self) -> State:
        """The execution state."""
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
        """Names of the steps whose actions succeeded, in the order they ran."""
        return [run.step for run in self.trace if run.error is None]

    def pending(self) -> list[PendingEvent]:
        """The events threads wait for now, in thread order."""
        return [
            PendingEvent(
                name=event.req.name,
                thread=thread.id,
                type=event.type,
                deadline=timer_deadline(event) if event.type == Timer.type else None,
            )
            for thread in self._state.threads
            if thread.status is ThreadStatus.WAITING_EVENT and thread.cur_callback is None
            for event in thread.wait_events
        ]

    # -- driving --------------------------------------------------------------------------------

    def start(self) -> Self:
        """Run the workflow until every thread is blocked or it ends; returns the harness."""
        if self._started:
            raise HarnessError(f"workflow {self._state.id!r} was already started")
        self._started = True
        self._guarded(self._resume)
        return self

    def send(self, event: str, input: Any = None, *, thread_id: str | None = None) -> Any:
        """Deliver ``event`` with ``input`` (``handle_callback``), then ``resume``.

        Returns what the event's handler returned. The library's errors (``UnknownCallback``,
        ``WorkflowFinished``, ``CallbackInputError``, ...) propagate unchanged.
        """
        self._require_started("send")
        req = CallbackRequest(workflow_id=self._state.id, thread_id=thread_id or "", name=event)
        return self._guarded(lambda: self._deliver(req, input))

    def advance(self, delta: timedelta) -> list[str]:
        """Move the clock forward by ``delta``, firing what falls due on the way.

        Timers fire in deadline order and retries run at their retry times: the clock stops at
        each due time in turn, so what a fired timer arms is due later in the same ``advance``
        if its deadline falls inside it. Returns the names of the timer events fired.
        """
        if delta < timedelta(0):
            raise ValueError(f"time only moves forward; got {delta}")
        self._require_started("advance")
        target = self._now + delta
        fired: list[str] = []
        while self._state.status not in TERMINAL:
            wake = next_wakeup(self._state)
            if wake is None or wake > target:
                break
            self._now = max(self._now, wake)
            before = self._state.pc
            due = due_timers(self._state, self._now)
            if due:
                self._guarded(partial(self._deliver, due[0], None))
                fired.append(due[0].name)
            else:
                self._guarded(self._resume)
            if self._state.pc == before:
                raise HarnessError(
                    f"workflow {self._state.id!r}: something was due at {wake.isoformat()} "
                    "but resuming made no progress"
                )
        self._now = target
        return fired

    def resume(self) -> State:
        """Resume at the current clock, e.g. after changing ``data`` by hand."""
        self._require_started("resume")
        self._guarded(self._resume)
        return self._state

    def cancel(self) -> State:
        """Cancel the workflow (``stmtflow.cancel``) at the current clock."""
        self._require_started("cancel")

        def run() -> None:
            cancel(self._wf, self._state, self._checkpoint, now=self._now)
            self._save()

        self._guarded(run)
        return self._state

    # -- internals ------------------------------------------------------------------------------

    def _require_started(self, what: str) -> None:
        if not self._started:
            raise HarnessError(f"call start() before {what}()")

    def _resume(self) -> None:
        resume(
            self._wf,
            self._state,
            self._checkpoint,
            max_steps=self.max_steps,
            now=self._now,
            default_retry=self.default_retry,
        )
        self._save()

    def _deliver(self, req: CallbackRequest, input: Any) -> Any:
        output = handle_callback(req, self._wf, self._state, input, now=self._now)
        self._save()
        self._resume()
        return output

    def _guarded(self, call: Callable[[], T]) -> T:
        """Run ``call``; afterwards (also on failure) continue from the saved JSON."""
        try:
            return call()
        finally:
            self._reload()

    def _checkpoint(self, kind: CheckpointType) -> None:
        self.checkpoints.append(kind)
        if kind is CheckpointType.AFTER_STEP:
            self._record_step()
        self._save(kind)

    def _record_step(self) -> None:
        state = self._state
        thread = next((t for t in state.threads if t.pc == state.pc), None)
        if thread is None:  # pragma: no cover - the interpreter always stamps the thread
            raise HarnessError(f"after_step at pc {state.pc}: no thread made that progress")
        failed = thread.status is ThreadStatus.EXECUTING and thread.last_error is not None
        if failed:
            attempt = thread.attempt
        else:  # the interpreter reset the count; the failures just before tell it
            attempt = 1
            for run in reversed(self.trace):
                if run.thread != thread.id:
                    continue
                if run.step != thread.cur_step or run.error is None:
                    break
                attempt += 1
        self.trace.append(
            StepRun(
                step=thread.cur_step,
                thread=thread.id,
                at=self._now,
                attempt=attempt,
                error=thread.last_error if failed else None,
            )
        )

    def _save(self, kind: CheckpointType | None = None) -> None:
        """Serialize data and state, checking that both load back to the same JSON."""
        if not self.persist:
            return
        where = f"workflow {self._state.id!r}" + (f" at checkpoint {kind.value}" if kind else "")
        try:
            data_json = self._wf.model_dump_json()
        except PydanticSerializationError as exc:
            raise HarnessError(f"{where}: the data cannot be serialized to JSON: {exc}") from exc
        state_json = self._state.model_dump_json()
        try:
            again = type(self._wf).model_validate_json(data_json).model_dump_json()
        except ValidationError as exc:
            raise HarnessError(f"{where}: the data's JSON does not load back: {exc}") from exc
        if again != data_json:
            raise HarnessError(
                f"{where}: the data changes in a JSON round trip "
                f"(fields {', '.join(_differing_fields(data_json, again))}); "
                "use JSON-friendly field types"
            )
        load_state(state_json)
        self._saved = (data_json, state_json)

    def _reload(self) -> None:
        if not self.persist or self._saved is None:
            return
        data_json, state_json = self._saved
        self._wf = type(self._wf).model_validate_json(data_json)
        self._state = load_state(state_json)


def _differing_fields(before: str, after: str) -> list[str]:
    old, new = json.loads(before), json.loads(after)
    names = sorted(set(old) | set(new))
    return [repr(name) for name in names if old.get(name) != new.get(name)] or ["(order)"]

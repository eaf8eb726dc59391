"""``resume`` / ``handle_callback`` and their asyncio twins: thin drivers of one interpreter.

The interpreter (`stmtflow.core._interpreter`) yields each call into user code and each checkpoint;
the plain driver performs them directly, the async driver awaits what is awaitable. The plain
driver never starts an event loop, so it is safe inside a running one; an ``async`` action,
handler or checkpoint reaching it is an `ExecutionError` that points to the async driver.

Example:
    >>> import stmtflow as sf
    >>> class Hello(sf.WorkflowState):
    ...     greeted: bool = False
    ...     def definition(self):
    ...         return sf.S(sf.Step("greet", self.greet))
    ...     def greet(self):
    ...         self.greeted = True
    >>> wf, state = Hello(), sf.new_state("h-1", "Hello")
    >>> kinds = []
    >>> sf.resume(wf, state, kinds.append).status.value, wf.greeted
    ('finished', True)
    >>> [k.value for k in kinds]
    ['after_resume', 'after_step', 'after_resume']
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from stmtflow.core._effects import RuntimeEffect, TakeLock
from stmtflow.core._interpreter import Call, Interpreter, Run
from stmtflow.dsl._child import needs_runtime
from stmtflow.dsl._context import clock, error_var, step_var
from stmtflow.dsl._lock import needs_lock_runtime
from stmtflow.dsl._statements import RetryPolicy
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import ExecutionError, StmtflowError, WorkflowFinished
from stmtflow.state import CallbackRequest, CheckpointType, State, ThreadStatus, WorkflowStatus

__all__ = [
    "acancel",
    "ahandle_callback",
    "aresume",
    "cancel",
    "drive",
    "handle_callback",
    "restart",
    "resume",
]

CheckpointFn = Callable[[CheckpointType], Any] | Callable[[CheckpointType], Awaitable[Any]] | None


def _clock(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (with a timezone), e.g. datetime.now(UTC)")
    return now


def _async_refusal(what: str, value: Any) -> ExecutionError:
    if inspect.iscoroutine(value):
        value.close()
    return ExecutionError(
        f"{what} is async; drive this workflow with aresume / ahandle_callback instead"
    )


Perform = Callable[[RuntimeEffect], Any]
"""How a runtime performs the effects on other instances (`RuntimeEffect`)."""


def _no_runtime(effect: RuntimeEffect) -> Any:
    if isinstance(effect, TakeLock):
        raise ExecutionError(f"{effect.what}: {needs_lock_runtime()}")
    raise ExecutionError(needs_runtime(effect.what))


def drive(
    run: Run,
    checkpoint: CheckpointFn,
    now: datetime,
    before_call: Callable[[Call], None] | None = None,
    perform: Perform = _no_runtime,
    awaiter: Callable[[Awaitable[Any]], Any] | None = None,
) -> Any:
    """Perform every effect of ``run`` directly; returns what the run returns.

    ``before_call`` (for the runtime) is called with each call into user code before it is
    made: the moment progress recorded by earlier checkpoints must be durable at the latest.
    Calls marked ``local`` (the built-in `Timer`'s setup and handle, which touch nothing outside
    data and state) need nothing durable first and skip it. ``perform`` (for the runtime)
    performs the effects on other instances, starting and cancelling children; without it they
    are an `ExecutionError` saying a runtime is needed. What ``perform`` raises ends the run.
    ``awaiter`` (for the runtime's async entry points and its worker) waits, from this thread,
    for an awaitable a call returned, on an event loop elsewhere, and returns its result; without
    it an async call is an `ExecutionError` pointing to the async driver.
    """
    value: Any = None
    error: Exception | None = None
    with clock(now):
        try:
            while True:
                try:
                    effect = run.send(value) if error is None else run.throw(error)
                except StopIteration as stop:
                    return stop.value
                value, error = None, None
                if isinstance(effect, CheckpointType):
                    if checkpoint is not None:
                        result = checkpoint(effect)
                        if result is not None and inspect.isawaitable(result):
                            raise _async_refusal("the checkpoint callback", result)
                    continue
                if type(effect) is not Call:
                    value = perform(effect)  # type: ignore[arg-type]  # the others are runtime's
                    continue
                if before_call is not None and not effect.local:
                    before_call(effect)
                token = step_var.set(effect.step)
                caught = None if effect.error is None else error_var.set(effect.error)
                try:
                    value = effect.fn(*effect.args)
                    if awaiter is not None and value is not None and inspect.isawaitable(value):
                        value = awaiter(value)
                except Exception as exc:
                    error = exc
                    continue
                finally:
                    step_var.reset(token)
                    if caught is not None:
                        error_var.reset(caught)
                if value is not None and inspect.isawaitable(value):
                    raise _async_refusal(effect.describe(), value)
        finally:
            run.close()


async def _adrive(run: Run, checkpoint: CheckpointFn, now: datetime) -> Any:
    """Perform every effect of ``run``, awaiting whatever is awaitable."""
    value: Any = None
    error: Exception | None = None
    with clock(now):
        try:
            while True:
                try:
                    effect = run.send(value) if error is None else run.throw(error)
                except StopIteration as stop:
                    return stop.value
                value, error = None, None
                if isinstance(effect, CheckpointType):
                    if checkpoint is not None:
                        result = checkpoint(effect)
                        if inspect.isawaitable(result):
                            await result
                    continue
                if type(effect) is not Call:
                    value = _no_runtime(effect)  # type: ignore[arg-type]
                    continue
                token = step_var.set(effect.step)
                caught = None if effect.error is None else error_var.set(effect.error)
                try:
                    value = effect.fn(*effect.args)
                    if value is not None and inspect.isawaitable(value):
                        value = await value
                except Exception as exc:
                    error = exc
                finally:
                    step_var.reset(token)
                    if caught is not None:
                        error_var.reset(caught)
        finally:
            run.close()


def _check_limit(max_steps: int) -> None:
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")


def resume(
    wf: WorkflowState,
    state: State,
    checkpoint: CheckpointFn = None,
    *,
    max_steps: int = 10_000,
    now: datetime | None = None,
    default_retry: RetryPolicy | None = None,
) -> State:
    """Run every runnable thread until all are blocked or the workflow ends.

    ``checkpoint(kind)`` is called after each unit of progress, when ``wf`` and ``state`` are
    consistent and worth persisting. ``now`` (aware; default the current UTC time) is the clock
    for timer deadlines and retry times. ``default_retry`` is the `RetryPolicy` of steps that
    have none (None: such a step's failure raises `StepError`). Returns ``state`` (changed in
    place).

    Raises:
        DefinitionMismatch: the stored state points at something the definition lacks.
        StepError: a step without a retry policy failed (data and state as at the last
            checkpoint; a later resume runs the step again).
        ExecutionError: ``definition()``, a lazy condition or id, or a WaitFor handler raised.
        StepLimitExceeded: more than ``max_steps`` actions ran.
    """
    _check_limit(max_steps)
    moment = _clock(now)
    result: State = drive(
        Interpreter(wf, state, moment, default_retry).resume(max_steps), checkpoint, moment
    )
    return result


async def aresume(
    wf: WorkflowState,
    state: State,
    checkpoint: CheckpointFn = None,
    *,
    max_steps: int = 10_000,
    now: datetime | None = None,
    default_retry: RetryPolicy | None = None,
) -> State:
    """`resume` for asyncio: actions, handlers and the checkpoint may be plain or ``async``."""
    _check_limit(max_steps)
    moment = _clock(now)
    result: State = await _adrive(
        Interpreter(wf, state, moment, default_retry).resume(max_steps), checkpoint, moment
    )
    return result


def _request(req: CallbackRequest | str) -> CallbackRequest:
    return CallbackRequest(name=req) if isinstance(req, str) else req


def handle_callback(
    req: CallbackRequest | str,
    wf: WorkflowState,
    state: State,
    input: Any = None,
    *,
    now: datetime | None = None,
) -> Any:
    """Deliver an external event to the thread waiting for it; returns the handler's output.

    ``req`` names the event (a bare event name is accepted too); ``thread_id`` and ``pc`` narrow
    the routing when given. Runs no workflow code beyond the handler: persist ``wf`` and
    ``state``, then call `resume`. A refused or failed callback changes nothing.
    """
    moment = _clock(now)
    return drive(Interpreter(wf, state, moment).callback(_request(req), input), None, moment)


async def ahandle_callback(
    req: CallbackRequest | str,
    wf: WorkflowState,
    state: State,
    input: Any = None,
    *,
    now: datetime | None = None,
) -> Any:
    """`handle_callback` for asyncio: the handler's ``handle`` may be ``async``."""
    moment = _clock(now)
    return await _adrive(
        Interpreter(wf, state, moment).callback(_request(req), input), None, moment
    )


def cancel(
    wf: WorkflowState,
    state: State,
    checkpoint: CheckpointFn = None,
    *,
    now: datetime | None = None,
    compensate: bool = False,
    default_retry: RetryPolicy | None = None,
) -> State:
    """End every thread, tear down pending events, and mark the workflow ``cancelled``.

    With ``compensate``, the compensations of the steps that completed run first, latest first
    (``default_retry`` is the policy of those whose step has none); a compensation still
    waiting for its retry time leaves the workflow ``compensating``, and a later `resume`
    goes on with it.

    Raises:
        WorkflowFinished: the workflow already finished or was cancelled.
    """
    moment = _clock(now)
    run = Interpreter(wf, state, moment, default_retry).cancel(compensate=compensate)
    result: State = drive(run, checkpoint, moment)
    return result


async def acancel(
    wf: WorkflowState,
    state: State,
    checkpoint: CheckpointFn = None,
    *,
    now: datetime | None = None,
    compensate: bool = False,
    default_retry: RetryPolicy | None = None,
) -> State:
    """`cancel` for asyncio (teardowns and compensations may be ``async``)."""
    moment = _clock(now)
    run = Interpreter(wf, state, moment, default_retry).cancel(compensate=compensate)
    result: State = await _adrive(run, checkpoint, moment)
    return result


def restart(state: State) -> State:
    """Make a ``failed`` workflow runnable again: its failed step gets a fresh set of attempts.

    The next `resume` runs the step that failed (with the same idempotency key). Data is not
    touched: fix it first if the failure was caused by bad data.

    Raises:
        StmtflowError: the workflow is not ``failed``.
    """
    if state.status is not WorkflowStatus.FAILED:
        if state.status in (WorkflowStatus.FINISHED, WorkflowStatus.CANCELLED):
            raise WorkflowFinished(f"workflow {state.id!r} is {state.status.value}, not failed")
        raise StmtflowError(f"workflow {state.id!r} is {state.status.value}, not failed")
    if state.unwind_to is not None:
        raise StmtflowError(
            f"workflow {state.id!r} failed and its compensations ran: there is no failed step "
            "to run again"
        )
    for thread in state.threads:
        if thread.status is ThreadStatus.EXECUTING and thread.last_error is not None:
            thread.attempt = 0
            thread.retry_at = None
    state.error = None
    state.status = WorkflowStatus.RESUMING
    state.pc += 1
    return state

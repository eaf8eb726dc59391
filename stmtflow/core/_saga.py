"""Compensation: the saga log of completed steps, and unwinding it durably, latest first.

A step with ``compensate=`` that completes adds a `SagaEntry` to ``State.saga``. Unwinding
moves entries, latest completion first, into ``State.unwinding``, a queue the interpreter works
off before any thread moves: each compensation is a call like a step action, with the step's
retry policy (or the default one; without either, one attempt), an idempotency key of its own
(`compensation_key`) and a checkpoint after each attempt, so across crashes each runs once, the
one in flight at most twice with the same key. One that fails for good is recorded with its
error in ``State.compensated`` and the rest still run. Three things start an unwinding:

- an uncaught final failure: every entry, then the execution ends ``failed``;
- ``cancel(compensate=True)``: every entry, then it ends ``cancelled``;
- ``Compensate()`` in a catch: the catching thread's entries since it entered that ``Try``;
  then the threads move on.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from stmtflow.core._effects import Call, Data, Effect, describe
from stmtflow.core._notes import Note
from stmtflow.dsl._context import StepKey
from stmtflow.dsl._statements import Step
from stmtflow.errors import DefinitionError, ExecutionError
from stmtflow.state import (
    COMPENSATIONS_KEPT,
    CheckpointType,
    Compensation,
    SagaEntry,
    State,
    WorkflowStatus,
)

if TYPE_CHECKING:
    from stmtflow.core._interpreter import Interpreter

__all__ = ["compensation_key", "take_since", "unwind", "unwind_all"]

SUFFIX = ".compensate"
"""A compensation runs as the step ``f"{step}{SUFFIX}"``: its `current_step` names it so, and
its idempotency key ``{workflow}/{thread}/{step}.compensate/{step_pc}`` is the key of the step
execution it undoes with the suffix, different from every step's own key."""


def compensation_key(state: State, entry: Compensation) -> StepKey:
    """What ``current_step()`` says inside ``entry``'s compensation."""
    return (state.id, entry.thread, f"{entry.step}{SUFFIX}", entry.attempt + 1, entry.pc)


def _due(entry: SagaEntry) -> Compensation:
    return Compensation(step=entry.step, thread=entry.thread, pc=entry.pc, body_of=entry.body_of)


def unwind_all(state: State, then: WorkflowStatus) -> None:
    """Queue every saga entry's compensation (latest first); end ``then`` once all ran."""
    state.unwinding.extend(_due(entry) for entry in reversed(state.saga))
    state.saga.clear()
    state.unwind_to = then
    state.status = WorkflowStatus.COMPENSATING


def take_since(state: State, thread_id: str, pc: int) -> None:
    """Queue the compensations of the steps ``thread_id`` completed at ``pc`` or later (a
    ``Compensate()``: the steps of the ``Try`` entered at ``pc``), latest first."""
    taken = [e for e in state.saga if e.thread == thread_id and e.pc >= pc]
    if not taken:
        return
    state.saga[:] = [e for e in state.saga if not (e.thread == thread_id and e.pc >= pc)]
    state.unwinding.extend(_due(entry) for entry in reversed(taken))
    state.status = WorkflowStatus.COMPENSATING


def _record(state: State, done: Compensation) -> None:
    """Log a compensation that ran; beyond `COMPENSATIONS_KEPT` successes, drop the oldest."""
    log = state.compensated
    log.append(done)
    if done.error is None and sum(1 for c in log if c.error is None) > COMPENSATIONS_KEPT:
        oldest = next(i for i, c in enumerate(log) if c.error is None)
        del log[oldest]
        state.compensated_dropped += 1


def unwind(interp: Interpreter) -> Generator[Effect, Any, int | None]:
    """Run the due compensations, the next first, until the queue is empty or the next waits
    for its retry time. Returns how many actions ran, or None when the queue is not done.

    Once done, the execution ends as ``unwind_to`` says, or (after a ``Compensate()``) its
    threads move on.
    """
    state = interp.state
    ran = 0
    while state.unwinding:
        entry = state.unwinding[0]
        if entry.retry_at is not None and entry.retry_at > interp.now:
            state.status = WorkflowStatus.COMPENSATING
            return None
        step, missing = _step(interp, entry)
        if step is None:
            _finish(interp, entry.model_copy(update={"error": missing, "retry_at": None}))
            yield CheckpointType.AFTER_STEP
            continue
        ran += 1
        snapshot = Data.snapshot(interp.wf, interp.where)
        try:
            assert step.compensate is not None
            yield Call(
                step.compensate, (), interp.where, compensation_key(state, entry), data=snapshot
            )
        except Exception as exc:
            Data.restore(interp.wf, snapshot)
            _failed(interp, step, entry, exc)
        else:
            interp._changed_data()
            _finish(
                interp,
                entry.model_copy(
                    update={"attempt": entry.attempt + 1, "retry_at": None, "error": None}
                ),
            )
        yield CheckpointType.AFTER_STEP
    then = state.unwind_to  # kept: how the unwinding ended (`restart` reads it)
    if then is not None:
        state.status = then
        failures = [c.error for c in state.compensated if c.error is not None]
        if failures:
            kept = f"{state.error}; " if state.error else ""
            state.error = f"{kept}{len(failures)} compensation(s) failed: " + "; ".join(failures)
    else:
        state.status = WorkflowStatus.RESUMING
        interp._refresh_status()
    return ran


def _step(interp: Interpreter, entry: Compensation) -> tuple[Step | None, str]:
    """The step whose compensation ``entry`` is, in the body it ran in; else None and why."""
    program = interp.program
    if entry.body_of:
        try:
            program = interp.bodies.built_for(entry.body_of, entry.thread)
        except (DefinitionError, ExecutionError) as exc:
            return None, f"compensation of step {entry.step!r} not found: {exc}"
    found = program.find(entry.step)
    node = None if found is None else found[1]
    if isinstance(node, Step) and node.compensate is not None:
        return node, ""
    return None, f"step {entry.step!r} has no compensation in the current definition"


def _failed(interp: Interpreter, step: Step, entry: Compensation, exc: Exception) -> None:
    """A compensation attempt failed: retry it under the step's policy, or record it failed."""
    state = interp.state
    attempt = entry.attempt + 1
    policy = step.retry or interp.default_retry
    error = f"compensation of step {step.name!r} (thread {entry.thread!r}) failed: {describe(exc)}"
    if policy is not None and attempt < policy.max_attempts and policy.is_retryable(exc):
        retry_at = interp.now + policy.interval(attempt)
        state.unwinding[0] = entry.model_copy(
            update={"attempt": attempt, "retry_at": retry_at, "error": error}
        )
        interp._progress()
        return
    _finish(interp, entry.model_copy(update={"attempt": attempt, "retry_at": None, "error": error}))


def _finish(interp: Interpreter, done: Compensation) -> None:
    """The compensation at the queue's head ran (or failed for good): log it, move on."""
    state = interp.state
    del state.unwinding[0]
    _record(state, done)
    if interp.notes is not None:
        note = Note("compensated", done.thread, done.step, done.attempt, done.error)
        interp.notes.append(note)
    interp._progress()

"""The interpreter's rules for a failing step: retries, escalation, catches, the final failure.

A failed attempt is retried under the step's policy (`Failures._step_failed`), handed to an
operator when the policy says ``escalate`` (`Failures._answered` takes the answer), caught by
the first ``Try`` around it that takes the error, or fails the workflow, which first unwinds
its saga (`Failures._fail_for_good`, the one place a final failure is handled). A mixin of
`stmtflow.core._interpreter.Interpreter`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from stmtflow.core import _escalation as escalation
from stmtflow.core._bodies import Chain
from stmtflow.core._effects import Effect, describe
from stmtflow.core._move import Move
from stmtflow.core._saga import unwind_all
from stmtflow.core._thread_index import can_move
from stmtflow.core._waits import Waits
from stmtflow.dsl._statements import Step
from stmtflow.errors import StepError
from stmtflow.state import TERMINAL_STATUSES, CaughtError, CheckpointType, Thread, WorkflowStatus

__all__ = ["Failures"]


class Failures(Waits):
    """What happens when a step's action raises."""

    if TYPE_CHECKING:

        def _apply(self, thread: Thread, move: Move, pc: int, chain: Chain) -> bool: ...

    def _step_failed(
        self, thread: Thread, step: Step, exc: Exception
    ) -> Generator[Effect, Any, bool]:
        """Record a failed attempt under the step's retry policy, or raise `StepError`; a final
        failure goes to `_final_failure`.

        A step without a policy of its own inside a ``Try`` that takes the error has one attempt
        (the default policy is not used): its failure is final at once.

        Returns whether the thread can go on at once (a retry already due, or caught at a step).
        """
        policy = step.retry
        attempt = thread.attempt + 1
        if policy is None and thread.frames and self._catchable(thread, exc):
            return (yield from self._final_failure(thread, step, exc, attempt))
        policy = policy or self.default_retry
        if policy is None:
            what = f"step {step.name!r} ({self._who(thread)})"
            raise StepError(f"{what} failed: {describe(exc)}", step=step.name) from exc
        if attempt >= policy.max_attempts or not policy.is_retryable(exc):
            if policy.on_exhausted == "escalate":  # an operator decides first (DESIGN §7)
                self._progress(thread)
                thread.attempt = attempt
                thread.last_error = describe(exc)
                self._note("step_failed", thread, step.name, attempt, thread.last_error)
                escalation.escalate(thread, self.state.id, self.now)
                self.index.update(thread)
                self._refresh_status(thread)
                yield CheckpointType.AFTER_STEP
                return False
            return (yield from self._final_failure(thread, step, exc, attempt))
        self._progress(thread)
        thread.attempt = attempt
        thread.last_error = describe(exc)
        thread.retry_at = self.now + policy.interval(attempt)
        if self.notes is not None:
            detail = {"retry_at": thread.retry_at.isoformat()}
            self._note("retry_scheduled", thread, step.name, attempt, thread.last_error, detail)
        self.index.update(thread)
        self._refresh_status(thread)
        yield CheckpointType.AFTER_STEP
        return can_move(thread, self.now)

    def _catchable(self, thread: Thread, exc: Exception) -> bool:
        """Whether a ``Try`` around ``thread``'s step takes ``exc``."""
        place = self.bodies.place(thread)
        return place.program.catcher(thread, exc, place.rooted) is not None

    def _final_failure(
        self, thread: Thread, step: Step, exc: Exception, attempt: int
    ) -> Generator[Effect, Any, bool]:
        """``step`` failed for good on ``thread`` (`_fail_for_good`), then the checkpoint and
        what the thread's new place needs (a catch's wait armed, teardowns of ended threads).
        Returns whether the thread can go on at once."""
        caught, can_go = self._fail_for_good(thread, step, exc, attempt)
        yield CheckpointType.AFTER_STEP
        state = self.state
        if caught:
            if not can_go:
                yield from self._came_to_rest(thread)
            return can_go and state.status not in TERMINAL_STATUSES
        if state.status is WorkflowStatus.COMPENSATING:
            yield from self._teardowns(retry=False)
        return False

    def _fail_for_good(
        self,
        thread: Thread,
        step: Step,
        exc: Exception,
        attempt: int,
        error: str | None = None,
    ) -> tuple[bool, bool]:
        """``step`` failed for good on ``thread`` (its ``attempt``-th attempt): the one place a
        final failure is handled, a step's own or an operator's ``fail`` of an escalation.

        The first ``Try`` around it that takes ``exc`` catches it: the thread moves into that
        catch. Uncaught, the workflow fails with ``error`` (default: one built from ``exc``)
        kept in ``State.error`` and the thread kept on the step; with steps to compensate, it
        first unwinds them (status ``compensating``, every other thread ended).
        Returns whether it was caught, and whether the thread can go on at once.
        """
        state = self.state
        pc = state.pc + 1
        caught = CaughtError(
            type=type(exc).__name__, message=str(exc), step=step.name, attempt=attempt
        )
        place = self.bodies.place(thread)
        counts = self._counts
        move = place.program.catch(thread, state.threads, exc, caught, pc, counts, place.rooted)
        self._note("step_failed", thread, step.name, attempt, describe(exc))
        if move is not None:
            self._note("caught", thread, step.name, attempt, describe(exc))
            state.last_caught = caught
            self._forget_failures(thread)
            thread.wait_events = ()  # an escalation's event, answered
            return True, self._apply(thread, move, pc, place.chain)
        self._progress(thread)
        thread.attempt = attempt
        thread.last_error = describe(exc) if error is None else thread.last_error
        thread.retry_at = None
        what = f"step {step.name!r} ({self._who(thread)})"
        state.error = error or f"{what} failed after {attempt} attempt(s): {describe(exc)}"
        if state.saga:
            self._end_all(WorkflowStatus.COMPENSATING, keep=thread)
            unwind_all(state, WorkflowStatus.FAILED)
        else:
            state.status = WorkflowStatus.FAILED
        self.index.update(thread)
        return False, False

    def _answered(self, thread: Thread, action: str) -> None:
        """An operator answered ``thread``'s escalation (`stmtflow.core._escalation.answer`).

        ``fail`` is the step's final failure, as a `StepError`: a ``Try`` around the step that
        takes it catches it, else the workflow compensates and fails (`_fail_for_good`); what
        the new place needs (a catch's wait armed, compensations, teardowns) the next resume
        does.
        """
        self._progress(thread)
        fails = escalation.answer(thread, action)
        self.index.update(thread)
        if not fails:
            self.state.status = WorkflowStatus.RESUMING
            return
        step = self._step_at(thread)
        error = escalation.failure(thread, self._who(thread))
        exc = StepError(error, step=step.name)
        caught, _ = self._fail_for_good(thread, step, exc, thread.attempt, error)
        if caught and self.state.status not in TERMINAL_STATUSES:
            self._refresh_status()

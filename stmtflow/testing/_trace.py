"""The harness's step trace: which step ran at each ``after_step`` checkpoint, and how it went.

At an ``after_step`` checkpoint the interpreter has just stamped the thread that ran with the
execution's new ``pc`` (DESIGN §3.12), so the thread whose ``pc`` equals ``state.pc`` is the one
whose step ran, and its ``cur_step`` names the step; a compensation that ran shows in the
state's saga log instead. Nothing in the definition is wrapped or changed.

Example:
    >>> StepTrace().runs
    []
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stmtflow.errors import HarnessError
from stmtflow.state import State, ThreadStatus

__all__ = ["StepRun", "StepTrace", "compensations_run"]


@dataclass(frozen=True, slots=True)
class StepRun:
    """One execution of a step's action, as the harness saw it.

    Attributes:
        step: the step's name.
        thread: the id of the thread that ran it.
        at: the harness clock when it ran.
        attempt: 1 for the first try, 2 for the first retry, ...
        error: the failure recorded under a retry policy, or None when the action succeeded.

    Example:
        >>> from datetime import UTC
        >>> StepRun("pay", "_main_", datetime(2024, 1, 1, tzinfo=UTC), 1).error is None
        True
    """

    step: str
    thread: str
    at: datetime
    attempt: int
    error: str | None = None


def compensations_run(state: State) -> int:
    """How many compensations ``state``'s saga log says have run (dropped ones included)."""
    return len(state.compensated) + state.compensated_dropped


class StepTrace:
    """The `StepRun` of every step execution of one instance, from its checkpoints.

    Args:
        compensations: compensations already run when tracing starts (a state continued).
    """

    def __init__(self, compensations: int = 0) -> None:
        self.runs: list[StepRun] = []
        self._compensations = compensations
        """Compensations the trace has seen run (a new one is the checkpoint's)."""
        self._retrying: tuple[str, int, int] | None = None
        """The compensation whose failed attempt the trace saw last (step, pc, attempt)."""

    def after_step(self, state: State, now: datetime) -> None:
        """Record the step (or compensation) whose ``after_step`` checkpoint ``state`` is."""
        if self._record_compensation(state, now):
            return
        thread = next((t for t in state.threads if t.pc == state.pc), None)
        moved = thread is None or (
            thread.status is not ThreadStatus.RESUMING and thread.last_error is None
        )
        if moved and state.last_caught is not None:
            # A step's final failure a Try caught: the thread moved on into the catch.
            caught = state.last_caught
            self.runs.append(
                StepRun(
                    step=caught.step,
                    thread=thread.id if thread is not None else "",
                    at=now,
                    attempt=caught.attempt,
                    error=f"{caught.type}: {caught.message}",
                )
            )
            return
        if thread is None:  # pragma: no cover - the interpreter always stamps the thread
            raise HarnessError(f"after_step at pc {state.pc}: no thread made that progress")
        # A failed attempt leaves its error on the thread (waiting for its retry, failed for
        # good, or escalated to an operator); a step that succeeded leaves none.
        failed = thread.last_error is not None
        if failed:
            attempt = thread.attempt
        else:  # the interpreter reset the count; the failures just before tell it
            attempt = 1
            for run in reversed(self.runs):
                if run.thread != thread.id:
                    continue
                if run.step != thread.cur_step or run.error is None:
                    break
                attempt += 1
        self.runs.append(
            StepRun(
                step=thread.cur_step,
                thread=thread.id,
                at=now,
                attempt=attempt,
                error=thread.last_error if failed else None,
            )
        )

    def _record_compensation(self, state: State, now: datetime) -> bool:
        """Trace a compensation that ran at this checkpoint (as ``"{step}.compensate"``)."""
        done = compensations_run(state)
        if done > self._compensations:
            self._compensations = done
            self._retrying = None
            last = state.compensated[-1]
            self._compensation(last.step, last.thread, last.attempt, last.error, now)
            return True
        head = state.unwinding[0] if state.unwinding else None
        if (
            head is not None
            and head.attempt
            and (head.step, head.pc, head.attempt) != (self._retrying)
        ):
            self._retrying = (head.step, head.pc, head.attempt)
            self._compensation(head.step, head.thread, head.attempt, head.error, now)
            return True
        return False

    def _compensation(
        self, step: str, thread: str, attempt: int, error: str | None, now: datetime
    ) -> None:
        self.runs.append(
            StepRun(
                step=f"{step}.compensate",
                thread=thread,
                at=now,
                attempt=max(attempt, 1),
                error=error,
            )
        )

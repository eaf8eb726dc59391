"""What user code can ask while the interpreter runs it: the current step and the clock.

The drivers set these around each call into user code, so they are right inside plain and
``async`` actions alike, and unset outside.

Example:
    >>> import stmtflow as sf
    >>> class Pay(sf.WorkflowState):
    ...     key: str = ""
    ...     def definition(self):
    ...         return sf.S(sf.Step("charge", self.charge))
    ...     def charge(self):
    ...         self.key = sf.current_step().key
    >>> wf = Pay(); _ = sf.resume(wf, sf.new_state("pay-1", "Pay")); wf.key
    'pay-1/_main_/charge/1'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

from stmtflow.errors import StmtflowError
from stmtflow.state import CaughtError

__all__ = ["StepInfo", "StepKey", "current_error", "current_step", "current_time"]


@dataclass(frozen=True, slots=True)
class StepInfo:
    """The step execution an action runs in.

    Attributes:
        workflow_id: the execution's id.
        thread_id: the thread running the step.
        step: the step's name.
        attempt: 1 on the first try, 2 on the first retry, ...
        key: an idempotency key: the same when this step execution re-runs after a crash or a
            retry, different for every other execution of any step.
    """

    workflow_id: str
    thread_id: str
    step: str
    attempt: int
    key: str


StepKey: TypeAlias = tuple[str, str, str, int, int]
"""What the drivers record for a running step: ``(workflow_id, thread_id, step, attempt,
step_pc)``; `current_step` turns it into a `StepInfo`. A plain tuple, built once per step."""


step_var: ContextVar[StepKey | None] = ContextVar("stmtflow_step", default=None)
"""Set by the drivers around each call into user code (None outside step actions)."""
error_var: ContextVar[CaughtError | None] = ContextVar("stmtflow_error", default=None)
"""Set by the drivers around a step action that runs inside a catch body."""
_clock: ContextVar[datetime | None] = ContextVar("stmtflow_clock", default=None)


def current_step() -> StepInfo:
    """The `StepInfo` of the step whose action is running; an error outside one."""
    running = step_var.get()
    if running is None:
        raise StmtflowError("current_step() was called outside a running step action")
    workflow_id, thread_id, step, attempt, step_pc = running
    return StepInfo(
        workflow_id=workflow_id,
        thread_id=thread_id,
        step=step,
        attempt=attempt,
        key=f"{workflow_id}/{thread_id}/{step}/{step_pc}",
    )


def current_error() -> CaughtError | None:
    """Inside a step action in a ``Catch`` body: the `CaughtError` that catch took (in nested
    catches, the innermost one's); None in a step action outside any catch body.

    A compensation running for a step counts as that step, not as a catch body: None there.

    Raises:
        StmtflowError: called outside a running step action.
    """
    if step_var.get() is None:
        raise StmtflowError("current_error() was called outside a running step action")
    return error_var.get()


def current_time() -> datetime:
    """The interpreter's clock (``resume(..., now=...)``) while it runs; else the UTC time."""
    return _clock.get() or datetime.now(UTC)


@contextmanager
def clock(now: datetime) -> Iterator[None]:
    """Make ``now`` what `current_time` returns for the duration of the block."""
    token = _clock.set(now)
    try:
        yield
    finally:
        _clock.reset(token)

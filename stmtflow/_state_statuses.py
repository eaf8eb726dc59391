"""The statuses of an execution, its threads and their events, and the checkpoint kinds.

Part of the execution state (`stmtflow.state`, which re-exports every name here): the `str`
enums its fields hold, ``TERMINAL_STATUSES``, and the kinds of progress a checkpoint follows.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "TERMINAL_STATUSES",
    "CheckpointType",
    "ThreadStatus",
    "WaitEventStatus",
    "WorkflowStatus",
]


class WorkflowStatus(StrEnum):
    """Where the whole execution stands."""

    RESUMING = "resuming"
    """Some thread can move."""
    WAITING = "waiting"
    """Every thread is blocked on an event, a condition or a retry time."""
    FINISHED = "finished"
    """The main thread ended."""
    FAILED = "failed"
    """A step used up its retry attempts (or raised a non-retryable error); see ``State.error``."""
    CANCELLED = "cancelled"
    """Cancelled from outside; its threads were ended and their events torn down."""
    COMPENSATING = "compensating"
    """Running compensations (``State.unwinding``), after an uncaught final failure, a
    ``cancel(compensate=True)`` or a ``Compensate()``; no thread moves meanwhile."""


TERMINAL_STATUSES: frozenset[WorkflowStatus] = frozenset(
    {WorkflowStatus.FINISHED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
)
"""The statuses of an ended execution: nothing in it runs again (only a failed setup or teardown
is still retried). Members are `str` values too, so a stored status string tests the same way:
``"finished" in TERMINAL_STATUSES``."""


class ThreadStatus(StrEnum):
    """What a thread's next move is."""

    EXECUTING = "executing"
    """Its next move runs the step at ``cur_step``."""
    RESUMING = "resuming"
    """Its next move finds its next position after ``cur_step`` (or enters ``cur_callback``)."""
    WAITING_EVENT = "waiting_event"
    """It stands at a ``Wait`` until one of ``wait_events`` arrives."""
    WAITING_CONDITION = "waiting_condition"
    """It stands at a ``WaitFor`` until the condition is true, or at a ``Join`` or ``ForEach``
    until enough threads of its group ended (a ``ForEach`` then starts its next items, or goes
    on); checked, like every condition, when no thread can move."""


class WaitEventStatus(StrEnum):
    """Life cycle of one armed event."""

    PENDING_SETUP = "pending_setup"
    """Armed, its handler's ``setup`` not yet called."""
    SETUP = "setup"
    """``setup`` succeeded; ``req.setup_data`` holds what it returned."""
    PENDING_TEARDOWN = "pending_teardown"
    """The wait is over; ``teardown`` is due."""
    SETUP_ERROR = "setup_error"
    """``setup`` raised (``error`` has the message); retried on every later resume."""
    TEARDOWN_ERROR = "teardown_error"
    """``teardown`` raised (``error`` has the message); retried on every later resume."""


class CheckpointType(StrEnum):
    """Which unit of progress a checkpoint call follows."""

    AFTER_STEP = "after_step"
    """A step's action ran (or a failed attempt was recorded under a retry policy)."""
    AFTER_SETUP = "after_setup"
    """An event's ``setup`` succeeded."""
    AFTER_TEARDOWN = "after_teardown"
    """An event's ``teardown`` succeeded."""
    AFTER_RESUME = "after_resume"
    """A thread made a scheduling move: started, advanced to its next position, or ended."""
    AFTER_CONDITION = "after_condition"
    """A ``WaitFor`` condition became true (and its handler ran)."""

"""Reading a `State` for what is due: timer deadlines and retry times.

The runtime fires timers through the same path as any other event: `due_timers` gives the
requests to deliver with ``handle_callback``. When an instance is due next is the runtime's one
answer, `stmtflow.runtime._unit_writes.wake_at` (stored as the record's wake-up; the test harness
follows it too), read off the interpreter's `ThreadIndex`. `next_wakeup` and `wakeups` answer
its timer-and-retry part by a scan over the threads, for a caller that drives a state without
an index; tests check the index against them.

Example:
    >>> from datetime import UTC, datetime
    >>> from stmtflow.state import new_state
    >>> next_wakeup(new_state("w-1", "W")) is None
    True
"""

from __future__ import annotations

from datetime import datetime

from stmtflow.dsl._handlers import Timer
from stmtflow.state import CallbackRequest, State, ThreadStatus, WaitEvent, WaitEventStatus

__all__ = ["due_timers", "next_wakeup", "timer_deadline", "wakeups"]


def timer_deadline(event: WaitEvent) -> datetime | None:
    """The deadline of an armed ``Timer`` event (None for other events or before setup)."""
    if event.type != Timer.type or event.status is not WaitEventStatus.SETUP:
        return None
    return Timer.deadline(event.req)


def due_timers(state: State, now: datetime) -> list[CallbackRequest]:
    """Requests for every armed timer whose deadline is at or before ``now``, earliest first.

    Each request carries the thread id and armed ``pc``, so delivering it can never fire a
    later wait's timer by mistake.
    """
    due: list[tuple[datetime, CallbackRequest]] = []
    for thread in state.threads:
        if thread.status is not ThreadStatus.WAITING_EVENT or thread.cur_callback is not None:
            continue
        for event in thread.wait_events:
            deadline = timer_deadline(event)
            if deadline is not None and deadline <= now:
                due.append((deadline, event.req))
    due.sort(key=lambda pair: pair[0])
    return [req for _, req in due]


def next_wakeup(state: State) -> datetime | None:
    """The earliest time something becomes due: a timer deadline or a step's retry time."""
    return wakeups(state)[0]


def wakeups(state: State) -> tuple[datetime | None, bool]:
    """`next_wakeup`, and whether a failed setup waits to be retried (one pass over threads)."""
    times: list[datetime] = []
    failed_setup = False
    for thread in state.threads:
        if thread.status is ThreadStatus.EXECUTING and thread.retry_at is not None:
            times.append(thread.retry_at)
        elif thread.status is ThreadStatus.WAITING_EVENT:
            armed = thread.cur_callback is None  # fired, not moved on yet: its timers are spent
            for event in thread.wait_events:
                if event.status is WaitEventStatus.SETUP_ERROR:
                    failed_setup = True
                elif armed and (deadline := timer_deadline(event)) is not None:
                    times.append(deadline)
    return min(times, default=None), failed_setup

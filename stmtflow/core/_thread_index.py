"""Which live threads each scan over a state looks for, kept up to date as threads change.

On every delivery the interpreter asks for the first thread that can move, the threads whose
event setup is due and the threads waiting on a condition, and the engine asks when the
instance is due next and which retried step last failed. Asked of the thread list, each question
costs a pass over every live thread: with a thousand threads waiting, those passes were half of
a delivery. A `ThreadIndex` answers them from a few small maps instead, each holding only the
threads it concerns (a waiting thread with nothing due is in none of them).

The interpreter is the only writer of the threads it indexes: it calls `ThreadIndex.add`,
`ThreadIndex.remove` and `ThreadIndex.update` whenever it changes what a thread is waiting for.
A change that keeps a thread in the same maps (a thread that can move going from one step to the
next) needs no call. Creation order, which decides who moves first, is kept as a rank per thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from stmtflow.core._timers import timer_deadline
from stmtflow.dsl._human import PERSON_FACING
from stmtflow.state import Thread, ThreadStatus, WaitEventStatus

__all__ = ["ThreadIndex", "can_move"]


def can_move(thread: Thread, now: datetime) -> bool:
    """Whether ``thread`` can move at ``now``: resuming, or executing with no retry time or one
    that has come."""
    status = thread.status
    if status is ThreadStatus.RESUMING:
        return True
    return status is ThreadStatus.EXECUTING and (thread.retry_at is None or thread.retry_at <= now)


class ThreadIndex:
    """The live threads of one state, filed by what the scans over them look for.

    Threads are keyed by identity: the index holds the very objects of ``state.threads``.
    """

    __slots__ = (
        "_asking",
        "_by_id",
        "_conditions",
        "_errors",
        "_failed",
        "_groups",
        "_moving",
        "_next",
        "_rank",
        "_setups",
        "_timers",
    )

    def __init__(self, threads: Iterable[Thread] = ()) -> None:
        self._rank: dict[int, int] = {}
        """Creation order: a thread's rank among all the index has seen."""
        self._next = 0
        self._by_id: dict[str, Thread] = {}
        self._moving: dict[int, Thread] = {}
        """Resuming or executing threads (an executing one may wait for its retry time)."""
        self._conditions: dict[int, Thread] = {}
        self._setups: dict[int, Thread] = {}
        """Threads waiting on events of which one's setup is pending or failed."""
        self._failed: dict[int, Thread] = {}
        """Threads waiting on events of which one's setup failed."""
        self._errors: dict[int, Thread] = {}
        """Threads whose current step has failed at least once (``last_error`` set)."""
        self._timers: dict[int, datetime] = {}
        """The earliest deadline of the armed timers of each thread waiting on one."""
        self._asking: dict[int, Thread] = {}
        """Threads whose armed events include one a person answers (`PERSON_FACING`)."""
        self._groups: dict[str, int] = {}
        """How many live threads each thread group has (a thread's group never changes)."""
        for thread in threads:
            self.add(thread)

    # -- changes ----------------------------------------------------------------------------------

    def add(self, thread: Thread) -> None:
        """A thread was created (appended to the state's threads, after every other)."""
        self._rank[id(thread)] = self._next
        self._next += 1
        self._by_id[thread.id] = thread
        if thread.group is not None:
            self._groups[thread.group] = self._groups.get(thread.group, 0) + 1
        self.update(thread)

    def remove(self, thread: Thread) -> None:
        """A thread ended (removed from the state's threads)."""
        key = id(thread)
        self._forget(key)
        del self._rank[key]
        self._by_id.pop(thread.id, None)
        group = thread.group
        if group is not None:
            left = self._groups[group] - 1
            if left:
                self._groups[group] = left
            else:
                del self._groups[group]

    def clear(self) -> None:
        """Every thread ended."""
        self._rank.clear()
        self._by_id.clear()
        self._moving.clear()
        self._conditions.clear()
        self._setups.clear()
        self._failed.clear()
        self._errors.clear()
        self._timers.clear()
        self._asking.clear()
        self._groups.clear()

    def update(self, thread: Thread) -> None:
        """``thread``'s status, events, callback or failure changed: file it again."""
        key = id(thread)
        self._forget(key)
        status = thread.status
        if status is ThreadStatus.RESUMING or status is ThreadStatus.EXECUTING:
            self._moving[key] = thread
        elif status is ThreadStatus.WAITING_CONDITION:
            self._conditions[key] = thread
        elif status is ThreadStatus.WAITING_EVENT:
            armed = thread.cur_callback is None  # fired, not moved on yet: its timers are spent
            for event in thread.wait_events:
                if event.status is WaitEventStatus.PENDING_SETUP:
                    self._setups[key] = thread
                elif event.status is WaitEventStatus.SETUP_ERROR:
                    self._setups[key] = self._failed[key] = thread
                elif armed and (at := timer_deadline(event)) is not None:
                    self._timers[key] = min(at, self._timers.get(key, at))
                if armed and event.type in PERSON_FACING:
                    self._asking[key] = thread
        if thread.last_error is not None:
            self._errors[key] = thread

    def _forget(self, key: int) -> None:
        self._moving.pop(key, None)
        self._conditions.pop(key, None)
        self._setups.pop(key, None)
        self._failed.pop(key, None)
        self._errors.pop(key, None)
        self._timers.pop(key, None)
        self._asking.pop(key, None)

    # -- questions --------------------------------------------------------------------------------

    def thread(self, thread_id: str) -> Thread | None:
        """The live thread with that id, or None."""
        return self._by_id.get(thread_id)

    def alive(self, group: str) -> int:
        """How many live threads belong to ``group``."""
        return self._groups.get(group, 0)

    def next_runnable(self, now: datetime) -> Thread | None:
        """The first thread, in creation order, that can move at ``now`` (`can_move`)."""
        best: Thread | None = None
        best_rank = -1
        rank = self._rank
        for key, thread in self._moving.items():
            if not can_move(thread, now):
                continue
            if best is None or rank[key] < best_rank:
                best, best_rank = thread, rank[key]
        return best

    def waiting_conditions(self) -> list[Thread]:
        """Threads at a ``WaitFor``, in creation order."""
        return self._ordered(self._conditions)

    def setups_due(self) -> list[Thread]:
        """Threads waiting on events whose setup is pending or failed, in creation order."""
        return self._ordered(self._setups)

    def asking(self) -> list[Thread]:
        """Threads waiting on an event a person answers, in creation order."""
        return self._ordered(self._asking)

    def first_error(self) -> Thread | None:
        """The first thread, in creation order, whose current step has failed."""
        errors = self._ordered(self._errors)
        return errors[0] if errors else None

    def wakeups(self) -> tuple[datetime | None, bool]:
        """What `stmtflow.core._timers.wakeups` reads off the state: the earliest retry time of an
        executing thread or deadline of an armed timer, and whether a setup failed."""
        times = [t.retry_at for t in self._moving.values() if t.status is ThreadStatus.EXECUTING]
        times.extend(self._timers.values())
        earliest = min((at for at in times if at is not None), default=None)
        return earliest, bool(self._failed)

    def _ordered(self, threads: dict[int, Thread]) -> list[Thread]:
        if len(threads) < 2:
            return list(threads.values())
        rank = self._rank
        return [threads[key] for key in sorted(threads, key=rank.__getitem__)]

"""What each `ThreadIndex` question answers, asked of the thread list by a plain scan: the
reference the index is checked against (in every test, by conftest.py, and by
test_thread_index.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from stmtflow.core import _timers as timers
from stmtflow.dsl._human import PERSON_FACING
from stmtflow.state import Thread, ThreadStatus, WaitEventStatus


def _runnable(threads: list[Thread], now: datetime) -> Thread | None:
    for t in threads:
        if t.status is ThreadStatus.RESUMING or (
            t.status is ThreadStatus.EXECUTING and (t.retry_at is None or t.retry_at <= now)
        ):
            return t
    return None


def _setups(threads: list[Thread]) -> list[Thread]:
    due = (WaitEventStatus.PENDING_SETUP, WaitEventStatus.SETUP_ERROR)
    waiting = [t for t in threads if t.status is ThreadStatus.WAITING_EVENT]
    return [t for t in waiting if any(e.status in due for e in t.wait_events)]


SCANS: dict[str, Callable[..., Any]] = {
    "next_runnable": _runnable,
    "setups_due": _setups,
    "waiting_conditions": lambda threads: [
        t for t in threads if t.status is ThreadStatus.WAITING_CONDITION
    ],
    "first_error": lambda threads: next((t for t in threads if t.last_error is not None), None),
    "wakeups": lambda threads: timers.wakeups(SimpleNamespace(threads=threads)),  # type: ignore[arg-type]
    "thread": lambda threads, id: next((t for t in threads if t.id == id), None),
    "asking": lambda threads: [
        t
        for t in threads
        if t.status is ThreadStatus.WAITING_EVENT
        and t.cur_callback is None
        and any(e.type in PERSON_FACING for e in t.wait_events)
    ],
    "alive": lambda threads, group: sum(1 for t in threads if t.group == group),
}
"""`ThreadIndex` method name → the scan giving its answer from the thread list (and the same
further arguments)."""


def same(got: Any, expected: Any) -> bool:
    """Equal answers; threads must be the very objects (equal fields are not enough)."""
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(map(same, got, expected))
    if isinstance(got, Thread) or isinstance(expected, Thread):
        return got is expected
    return bool(got == expected)

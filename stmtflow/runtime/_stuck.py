"""Stuck work: instances that should be moving and are not, each with why (`Engine.stuck`).

Three signs, each read from what the store keeps (no workflow code runs):

- ``lease_lapsed``: a worker claimed the instance and its lease ran out without a release or a
  renewal (the worker died or hangs) and no worker has taken it over since;
- ``overdue``: its wake-up time passed longer than ``older_than`` ago and nobody ran it (no
  worker is running, or every worker is busy);
- ``failing``: its latest units all failed (the last ``FAILING_RUN`` history events are failed
  attempts, or, without history, the record keeps an error);
- ``outbox_failing``: a message it emitted has failed ``OUTBOX_FAILURES`` deliveries or more
  (a sink that keeps failing: `stmtflow.runtime._outbox.outbox_stuck`), listed whatever the
  instance's status, as the message outlives the instance's end.

`StuckItem` is open to more reasons.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from stmtflow.runtime._outbox import outbox_stuck
from stmtflow.state import WorkflowStatus
from stmtflow.stores._history import HistoryStore

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine

__all__ = ["FAILING_RUN", "OUTBOX_FAILURES", "StuckItem", "stuck"]

FAILING_RUN = 3
"""How many failed attempts in a row, and nothing else since, make an instance ``failing``."""

OUTBOX_FAILURES = 3
"""How many failed deliveries of one outbox message make it ``outbox_failing``."""

_FAILURES = frozenset({"step_failed", "retry_scheduled"})
_LIVE = (WorkflowStatus.RESUMING, WorkflowStatus.WAITING, WorkflowStatus.COMPENSATING)


@dataclass(frozen=True, slots=True)
class StuckItem:
    """One instance (or, for other reasons, one thing) that is stuck, and why.

    Example:
        >>> StuckItem(id="order-7", reason="overdue", detail="due 10 minutes ago").reason
        'overdue'
    """

    id: str
    """The instance."""
    reason: str
    """``lease_lapsed``, ``overdue``, ``failing`` or ``outbox_failing`` (more may be added:
    match on the ones you know)."""
    detail: str
    """What was found, in words (who held the lease until when, since when it is due, the
    last error)."""
    workflow: str | None = None
    """The instance's workflow type."""
    since: datetime | None = None
    """Since when: the lease's expiry, the wake-up time, the last failure."""


def _ago(now: datetime, then: datetime) -> str:
    seconds = int((now - then).total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def stuck(engine: Engine, older_than: timedelta) -> builtins.list[StuckItem]:
    """Every stuck instance with each reason found (`Engine.stuck`), oldest first."""
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise ValueError(f"older_than must be a timedelta >= 0, got {older_than!r}")
    now = engine.clock()
    store = engine.store
    history = store if isinstance(store, HistoryStore) else None
    items: list[StuckItem] = []
    for status in _LIVE:
        for rec in store.list(status=status.value):
            expires = rec.lease_expires
            if rec.lease_owner is not None and expires is not None and expires < now:
                items.append(
                    StuckItem(
                        rec.id,
                        "lease_lapsed",
                        f"the lease of {rec.lease_owner!r} lapsed {_ago(now, expires)} ago and "
                        "no worker took it over",
                        rec.workflow,
                        expires,
                    )
                )
            if rec.wake_at is not None and rec.wake_at <= now - older_than:
                items.append(
                    StuckItem(
                        rec.id,
                        "overdue",
                        f"due since {rec.wake_at.isoformat()} ({_ago(now, rec.wake_at)} ago) "
                        "and not run: is a worker running?",
                        rec.workflow,
                        rec.wake_at,
                    )
                )
            if rec.error is not None:
                failing = _failing(history, rec.id, rec.error)
                if failing is not None:
                    items.append(StuckItem(rec.id, "failing", failing[0], rec.workflow, failing[1]))
    for found in outbox_stuck(store, min_attempts=OUTBOX_FAILURES):
        items.append(
            StuckItem(
                found.instance_id,
                "outbox_failing",
                found.reason,
                None,
                found.message.created_at,
            )
        )
    items.sort(key=lambda i: (i.since or now, i.id, i.reason))
    return items


def _failing(
    history: HistoryStore | None, id: str, error: str
) -> tuple[str, datetime | None] | None:
    """Why instance ``id`` (which keeps ``error``) counts as failing, and since when; None if
    its latest units did not all fail."""
    if history is None:
        return f"its last unit failed: {error}", None
    events, _ = history.history(id)
    tail = events[-FAILING_RUN:]
    if len(tail) < FAILING_RUN or any(e.kind not in _FAILURES for e in tail):
        return None
    last = tail[-1]
    return (
        f"its last {FAILING_RUN} attempts failed (latest: {last.name or '?'}, attempt "
        f"{last.attempt or '?'}): {last.error or error}",
        tail[0].at,
    )

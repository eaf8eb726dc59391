"""An instance's history as a store keeps it: `HistoryEvent` rows, snapshots, and pruning.

The history is written as part of a write's `Batch` (`HistoryWrite`), in the same commit as
the progress it records: a crash keeps both or neither. Each event gets the next sequence
number of its instance (1, 2, ...); a store keeps at least the last ``limit`` of them and, for
rewinding, the data and state a write left for at least the last ``snapshots`` events — one
snapshot per write that has events, kept with its last event; every event of that write
points to it (``HistoryEvent.snapshot``). How many were dropped is the first kept ``seq`` minus
one.

The SQL stores delete what is past the caps every `TRIM_EVERY` events, not with every write:
deleting the oldest row and clearing the oldest snapshot at each write would touch two more
database pages per commit, and on SQLite the pages a commit writes are what it costs. So they
keep up to ``TRIM_EVERY`` events (and snapshots) more than asked (SQLite, which trims when it
moves the events waiting in the instance's row to its table, up to ``TRIM_EVERY`` + 16), and
the engine shows only the latest ``limit`` events and restores only the latest ``snapshots``
(`stmtflow.runtime._rewind`).

A store that keeps histories implements `HistoryStore` beside `Store` (every store of this
package does); one that does not (a store of your own) is told apart with
``isinstance(store, HistoryStore)``.

Example:
    >>> from datetime import UTC, datetime
    >>> HistoryEvent(seq=1, at=datetime(2026, 1, 1, tzinfo=UTC), kind="started").kind
    'started'
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from stmtflow.state import TERMINAL_STATUSES

if TYPE_CHECKING:
    from stmtflow.stores._record import Record

__all__ = [
    "ENDED",
    "TRIM_EVERY",
    "HistoryEvent",
    "HistoryStore",
    "HistoryWrite",
    "Snapshot",
    "numbered",
    "prunable",
    "trim_due",
]

ENDED = frozenset(s.value for s in TERMINAL_STATUSES)
"""The stored statuses of an instance that has ended."""


def prunable(rec: Record, ended_before: datetime, now: datetime) -> bool:
    """Whether ``prune`` may delete ``rec``: ended before ``ended_before``, nothing due, and no
    live lease at ``now`` (stores whose query cannot call this say the same in their own
    language)."""
    return (
        rec.status in ENDED
        and rec.wake_at is None
        and not rec.lease_live(now)
        and rec.updated_at is not None
        and rec.updated_at < ended_before
    )


TRIM_EVERY = 64
"""Events between two deletions of what is past an instance's caps (SQL stores)."""


def trim_due(last: int, top: int) -> bool:
    """Whether a write taking an instance's last seq from ``last`` to ``top`` trims."""
    return last // TRIM_EVERY != top // TRIM_EVERY


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One thing that happened to an instance, written with the progress it records.

    Example:
        >>> from datetime import UTC, datetime
        >>> at = datetime(2026, 1, 1, tzinfo=UTC)
        >>> HistoryEvent(seq=3, at=at, kind="step_completed", thread_id="_main_",
        ...              name="charge", attempt=1).name
        'charge'
    """

    seq: int
    """Its number within the instance: 1, 2, ... in the order things happened (0 before the
    store numbered it)."""
    at: datetime
    """When it happened: the engine's clock at the write that recorded it (aware, UTC)."""
    kind: str
    """What happened: ``started``, ``step_completed``, ``step_failed``, ``retry_scheduled``,
    ``event_delivered``, ``timer_fired``, ``child_started``, ``child_ended``, ``caught``,
    ``compensated``, ``cancelled``, ``rewound`` (also a fork's, after its ``started``),
    ``finished``, ``failed``."""
    thread_id: str | None = None
    """The thread it happened on (None for the instance as a whole)."""
    name: str | None = None
    """The step or event it is about."""
    attempt: int | None = None
    """The step's attempt, 1 for the first."""
    error: str | None = None
    """What failed."""
    detail: dict[str, Any] | None = None
    """More, by kind: a retry's ``retry_at``, a child's ``child`` id and ``status``, a rewind's
    ``to``."""
    snapshot: int | None = None
    """The seq under which the data and state the event's write left are filed (the write's
    last event), while a snapshot is kept; what `Engine.rewind` restores."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The data and state JSON a write left, filed under its last history event."""

    seq: int
    data: str
    state: str


@dataclass(frozen=True, slots=True)
class HistoryWrite:
    """The history a write appends, in its transaction (`Batch.history`)."""

    events: tuple[HistoryEvent, ...]
    """The events, in order (their ``seq`` is set by the store)."""
    limit: int
    """How many events of the instance to keep at most (the oldest go first); at least 1."""
    snapshots: int = 0
    """For how many of the latest events to keep a snapshot (0: none)."""
    data: str = ""
    """The data JSON the write leaves (the snapshot, with ``snapshots``): the record's, which a
    store may file from the row it writes instead (SQLite's trigger does)."""
    state: str = ""
    """The state JSON the write leaves (the record's, as ``data``)."""


@runtime_checkable
class HistoryStore(Protocol):
    """What a store that keeps histories offers beside the `Store` contract."""

    def history(self, id: str) -> tuple[builtins.list[HistoryEvent], int]:
        """Instance ``id``'s kept events, oldest first, and how many older ones were dropped
        (an unknown id has none)."""
        ...

    def snapshot(self, id: str, seq: int) -> Snapshot | None:
        """The snapshot filed under event ``seq`` of instance ``id``, if still kept."""
        ...

    def prune(
        self,
        ended_before: datetime,
        *,
        workflow: str | None = None,
        limit: int = 100,
        now: datetime,
    ) -> builtins.list[str]:
        """Delete up to ``limit`` ended instances (finished, failed, cancelled) last written
        before ``ended_before`` (only of ``workflow`` when given), with their history, inputs
        and inbox, in one short transaction; never one with a wake-up left (a teardown to
        retry) or a live lease at ``now``. Returns the ids deleted."""
        ...


def numbered(write: HistoryWrite, last: int) -> builtins.list[HistoryEvent]:
    """``write``'s events numbered on from ``last`` (the instance's last seq), each pointing to
    the write's snapshot when one is kept."""
    top = last + len(write.events)
    snap = top if write.snapshots else None
    return [
        HistoryEvent(
            seq=last + i,
            at=e.at,
            kind=e.kind,
            thread_id=e.thread_id,
            name=e.name,
            attempt=e.attempt,
            error=e.error,
            detail=e.detail,
            snapshot=snap,
        )
        for i, e in enumerate(write.events, 1)
    ]

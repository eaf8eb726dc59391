"""Schedules as a store keeps them: one `ScheduleRow` per name, written compare-and-set.

A store never parses a schedule: ``spec`` is JSON text the runtime writes and reads
(`stmtflow.runtime._schedules`), as a record's data and state are. The store knows only what it
needs to hand out due schedules cheaply: ``due_at``, indexed, and a ``version`` for
compare-and-set, so two workers that read the same row cannot both move it on.

This module holds the row and the in-memory backend's methods (`MemorySchedules`); the other
stores' are in `stmtflow.stores._sqlite_schedules`, `stmtflow.stores._postgres_schedules`,
`stmtflow.stores._redis_schedules` and `stmtflow.stores._nats_schedules`.

Example:
    >>> from stmtflow.stores import open_store
    >>> store = open_store("memory://")
    >>> store.put_schedule(ScheduleRow(name="nightly", spec="{}"), expected_version=0).version
    1
"""

from __future__ import annotations

import builtins
import threading
from dataclasses import dataclass, replace
from datetime import datetime

from stmtflow.errors import ConflictError, NotFound

__all__ = [
    "MemorySchedules",
    "ScheduleRow",
    "missing_schedule",
    "schedule_conflict",
]


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One stored schedule.

    Example:
        >>> ScheduleRow(name="nightly", spec="{}").due_at is None
        True
    """

    name: str
    """The schedule's name (unique in the store)."""
    spec: str
    """The schedule as JSON text (written and read by the runtime only)."""
    due_at: datetime | None = None
    """When a worker should next look at it (aware, UTC); None: never (paused)."""
    version: int = 0
    """0 before it is stored; +1 on every `put_schedule`."""


def missing_schedule(name: str) -> NotFound:
    """The `NotFound` for a schedule name the store does not hold."""
    return NotFound(f"no schedule named {name!r}")


def schedule_conflict(name: str, expected: int, found: int | None) -> ConflictError:
    """The `ConflictError` of a refused `put_schedule`."""
    if found is None:
        return ConflictError(
            f"schedule {name!r} was removed by another writer; write at version {expected} refused"
        )
    if expected == 0:
        return ConflictError(f"a schedule named {name!r} already exists")
    return ConflictError(
        f"schedule {name!r} was changed by another writer: expected version {expected}, "
        f"found version {found}"
    )


class MemorySchedules:
    """The schedule methods of the `Store` contract, kept in a dict behind the store's lock."""

    _lock: threading.RLock
    _schedules: dict[str, ScheduleRow]

    def put_schedule(self, row: ScheduleRow, *, expected_version: int) -> ScheduleRow:
        """Write ``row`` if the stored version is ``expected_version`` (0: not stored yet)."""
        with self._lock:
            current = self._schedules.get(row.name)
            found = None if current is None else current.version
            if (found or 0) != expected_version:
                raise schedule_conflict(row.name, expected_version, found)
            stored = replace(row, version=expected_version + 1)
            self._schedules[row.name] = stored
            return stored

    def get_schedule(self, name: str) -> ScheduleRow:
        """The schedule named ``name``; `NotFound` if there is none."""
        with self._lock:
            try:
                return self._schedules[name]
            except KeyError:
                raise missing_schedule(name) from None

    def list_schedules(self) -> builtins.list[ScheduleRow]:
        """Every schedule, by name."""
        with self._lock:
            return [self._schedules[n] for n in sorted(self._schedules)]

    def delete_schedule(self, name: str) -> bool:
        """Remove the schedule; False if there was none."""
        with self._lock:
            return self._schedules.pop(name, None) is not None

    def due_schedules(self, now: datetime, limit: int = 100) -> builtins.list[ScheduleRow]:
        """Schedules with ``due_at <= now``, earliest first, at most ``limit``."""
        with self._lock:
            due = [r for r in self._schedules.values() if r.due_at is not None and r.due_at <= now]
            return sorted(due, key=lambda r: (r.due_at, r.name))[:limit]

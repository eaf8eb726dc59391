"""The SQLite store's schedules: rows of ``stmtflow_schedules`` (`stmtflow.stores._sqlite_schema`).

Times are kept as the store keeps every time: fixed-width UTC ISO text, so ``due_at <= ?``
compares them as strings (`stmtflow.stores.sqlite`).
"""

from __future__ import annotations

import builtins
import contextlib
import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from stmtflow.stores._schedules import ScheduleRow, missing_schedule, schedule_conflict
from stmtflow.stores.base import aware, utcnow

__all__ = ["SCHEDULES_SCHEMA", "SQLiteSchedules"]

SCHEDULES_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS stmtflow_schedules (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    due_at TEXT,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS stmtflow_schedules_due
    ON stmtflow_schedules (due_at) WHERE due_at IS NOT NULL""",
)
"""The table version 6 added (created whatever version a file is brought up from)."""


def _ts(value: datetime | None) -> str | None:
    return None if value is None else aware(value, "due_at").isoformat(timespec="microseconds")


def _row(row: sqlite3.Row) -> ScheduleRow:
    due = row["due_at"]
    return ScheduleRow(
        name=row["name"],
        spec=row["spec"],
        due_at=None if due is None else datetime.fromisoformat(due).astimezone(UTC),
        version=row["version"],
    )


class SQLiteSchedules:
    """The schedule methods of the `Store` contract over the store's connections."""

    if TYPE_CHECKING:  # the store's own connections (`stmtflow.stores.sqlite.SQLiteStore`)

        def _conn(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
        def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

    def put_schedule(self, row: ScheduleRow, *, expected_version: int) -> ScheduleRow:
        """Write ``row`` if the stored version is ``expected_version`` (0: not stored yet)."""
        params = {
            "name": row.name,
            "spec": row.spec,
            "due_at": _ts(row.due_at),
            "expected": expected_version,
            "now": _ts(utcnow()),
        }
        with self._write() as conn:
            if expected_version == 0:
                done = conn.execute(
                    "INSERT OR IGNORE INTO stmtflow_schedules "
                    "(name, spec, due_at, version, updated_at) "
                    "VALUES (:name, :spec, :due_at, 1, :now)",
                    params,
                ).rowcount
            else:
                done = conn.execute(
                    "UPDATE stmtflow_schedules SET spec = :spec, due_at = :due_at, "
                    "version = version + 1, updated_at = :now "
                    "WHERE name = :name AND version = :expected",
                    params,
                ).rowcount
            if done != 1:
                found = conn.execute(
                    "SELECT version FROM stmtflow_schedules WHERE name = ?", (row.name,)
                ).fetchone()
                raise schedule_conflict(
                    row.name, expected_version, None if found is None else found[0]
                )
        due = None if row.due_at is None else aware(row.due_at, "due_at")
        return ScheduleRow(row.name, row.spec, due, expected_version + 1)

    def get_schedule(self, name: str) -> ScheduleRow:
        """The schedule named ``name``; `NotFound` if there is none."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT * FROM stmtflow_schedules WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise missing_schedule(name)
        return _row(row)

    def list_schedules(self) -> builtins.list[ScheduleRow]:
        """Every schedule, by name."""
        with self._conn() as conn:
            rows = conn.execute("SELECT * FROM stmtflow_schedules ORDER BY name").fetchall()
        return [_row(r) for r in rows]

    def delete_schedule(self, name: str) -> bool:
        """Remove the schedule; False if there was none."""
        with self._conn() as conn:
            done = conn.execute("DELETE FROM stmtflow_schedules WHERE name = ?", (name,))
            return done.rowcount == 1

    def due_schedules(self, now: datetime, limit: int = 100) -> builtins.list[ScheduleRow]:
        """Schedules with ``due_at <= now``, earliest first, at most ``limit`` (by the index)."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT * FROM stmtflow_schedules WHERE due_at IS NOT NULL AND due_at <= ? "
                "ORDER BY due_at, name LIMIT ?",
                (_ts(now), limit),
            ).fetchall()
        return [_row(r) for r in rows]

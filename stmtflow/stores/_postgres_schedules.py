"""The PostgreSQL store's schedules: rows of ``stmtflow_schedules``
(`stmtflow.stores._postgres_schema`), each write one compare-and-set statement."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import ConnectionPool

from stmtflow.stores._schedules import ScheduleRow, missing_schedule, schedule_conflict
from stmtflow.stores.base import aware

__all__ = ["SCHEDULES_SCHEMA", "PostgresSchedules"]

SCHEDULES_SCHEMA = """
CREATE TABLE IF NOT EXISTS stmtflow_schedules (
    name text PRIMARY KEY,
    spec text NOT NULL,
    due_at timestamptz,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS stmtflow_schedules_due
    ON stmtflow_schedules (due_at) WHERE due_at IS NOT NULL;
"""
"""The table version 4 added (created whatever version a database is brought up from)."""

_COLUMNS = "name, spec, due_at, version"


def _row(row: tuple[Any, ...]) -> ScheduleRow:
    due: datetime | None = row[2]
    return ScheduleRow(
        name=row[0],
        spec=row[1],
        due_at=None if due is None else due.astimezone(UTC),
        version=row[3],
    )


class PostgresSchedules:
    """The schedule methods of the `Store` contract over the store's connection pool."""

    _pool: ConnectionPool[Any]

    def put_schedule(self, row: ScheduleRow, *, expected_version: int) -> ScheduleRow:
        """Write ``row`` if the stored version is ``expected_version`` (0: not stored yet)."""
        due = None if row.due_at is None else aware(row.due_at, "due_at")
        with self._pool.connection() as conn:
            if expected_version == 0:
                written = conn.execute(
                    f"INSERT INTO stmtflow_schedules ({_COLUMNS}) VALUES (%s, %s, %s, 1) "
                    f"ON CONFLICT (name) DO NOTHING RETURNING {_COLUMNS}",
                    (row.name, row.spec, due),
                ).fetchone()
            else:
                written = conn.execute(
                    "UPDATE stmtflow_schedules SET spec = %s, due_at = %s, "
                    "version = version + 1, updated_at = now() "
                    f"WHERE name = %s AND version = %s RETURNING {_COLUMNS}",
                    (row.spec, due, row.name, expected_version),
                ).fetchone()
            if written is None:
                found = conn.execute(
                    "SELECT version FROM stmtflow_schedules WHERE name = %s", (row.name,)
                ).fetchone()
                raise schedule_conflict(
                    row.name, expected_version, None if found is None else found[0]
                )
        return _row(written)

    def get_schedule(self, name: str) -> ScheduleRow:
        """The schedule named ``name``; `NotFound` if there is none."""
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM stmtflow_schedules WHERE name = %s", (name,)
            ).fetchone()
        if row is None:
            raise missing_schedule(name)
        return _row(row)

    def list_schedules(self) -> builtins.list[ScheduleRow]:
        """Every schedule, by name."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM stmtflow_schedules ORDER BY name"
            ).fetchall()
        return [_row(r) for r in rows]

    def delete_schedule(self, name: str) -> bool:
        """Remove the schedule; False if there was none."""
        with self._pool.connection() as conn:
            done = conn.execute("DELETE FROM stmtflow_schedules WHERE name = %s", (name,))
            return bool(done.rowcount == 1)

    def due_schedules(self, now: datetime, limit: int = 100) -> builtins.list[ScheduleRow]:
        """Schedules with ``due_at <= now``, earliest first, at most ``limit`` (by the index)."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM stmtflow_schedules "
                "WHERE due_at IS NOT NULL AND due_at <= %s ORDER BY due_at, name LIMIT %s",
                (aware(now, "now"), limit),
            ).fetchall()
        return [_row(r) for r in rows]

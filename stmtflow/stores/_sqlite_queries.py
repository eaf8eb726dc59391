"""The SQLite store's reads: a record, a listing, the pending inputs; and the targets table.

A mixin of `stmtflow.stores.sqlite.SQLiteStore`; a listing reads its rows and their state parts
from one snapshot.
"""

from __future__ import annotations

import builtins
import contextlib
import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING

from stmtflow.stores._inputs import PendingInput, from_row, input_query, schema_reader
from stmtflow.stores._sql import COUNT_INSTANCES, list_query
from stmtflow.stores._sqlite_rows import _MARK, _READ, _dt, _ts
from stmtflow.stores.base import Record, aware

__all__ = ["SQLiteQueries"]


class SQLiteQueries:
    """`get`, `list`, `inputs`, the targets, `count_due` and `count_instances` over the store's
    connections."""

    if TYPE_CHECKING:  # the store's own (`stmtflow.stores.sqlite.SQLiteStore`)

        def _conn(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
        def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
        def _fetch(self, conn: sqlite3.Connection, id: str) -> Record: ...
        def _whole(self, conn: sqlite3.Connection, row: sqlite3.Row) -> Record: ...

    def get(self, id: str) -> Record:
        with self._conn() as conn:
            return self._fetch(conn, id)

    def list(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int | None = None,
        *,
        parent_id: str | None = None,
    ) -> builtins.list[Record]:
        sql, params = list_query(_READ, status, workflow, limit, _MARK, parent_id)
        with self._conn() as conn:
            conn.execute("BEGIN")  # rows and their state parts from one snapshot
            try:
                rows = conn.execute(sql, params).fetchall()
                return [self._whole(conn, row) for row in rows]
            finally:
                conn.execute("COMMIT")

    # -- pending inputs ---------------------------------------------------------------------

    def inputs(
        self, *, assignee: str | None = None, workflow: str | None = None
    ) -> builtins.list[PendingInput]:
        sql, params = input_query(assignee, workflow, _MARK)
        with self._conn() as conn:
            rows = conn.execute(sql, params).fetchall()
        read = schema_reader()
        return [from_row(tuple(row), read, _dt) for row in rows]

    # -- targets ----------------------------------------------------------------------------

    def set_target(self, workflow: str, target: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO stmtflow_targets (workflow, target) VALUES (?, ?) "
                "ON CONFLICT (workflow) DO UPDATE SET target = excluded.target",
                (workflow, target),
            )

    def get_target(self, workflow: str) -> str | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT target FROM stmtflow_targets WHERE workflow = ?", (workflow,)
            ).fetchone()
        return None if row is None else str(row["target"])

    def targets(self) -> dict[str, str]:
        with self._conn() as conn:
            rows = conn.execute("SELECT workflow, target FROM stmtflow_targets ORDER BY workflow")
            return {str(row["workflow"]): str(row["target"]) for row in rows}

    def count_due(self, now: datetime) -> int:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT count(*) AS due FROM stmtflow_instances "
                "WHERE wake_at IS NOT NULL AND wake_at <= ?",
                (_ts(aware(now, "now")),),
            ).fetchone()
        return int(row["due"])

    def count_instances(self) -> dict[tuple[str, str], int]:
        with self._conn() as conn:
            rows = conn.execute(COUNT_INSTANCES).fetchall()
        return {(str(row[0]), str(row[1])): int(row[2]) for row in rows}

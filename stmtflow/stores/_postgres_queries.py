"""The PostgreSQL store's reads: a record, a listing, the pending inputs; and the targets table.

A mixin of `stmtflow.stores.postgres.PostgresStore`.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stmtflow.stores._inputs import PendingInput, from_row, input_query, schema_reader
from stmtflow.stores._postgres_rows import _MARK, _READ, _dt, _record
from stmtflow.stores._sql import COUNT_INSTANCES, list_query
from stmtflow.stores.base import Record, aware

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["PostgresQueries"]


class PostgresQueries:
    """`get`, `list`, `inputs`, the targets, `count_due` and `count_instances` over the store's
    pool."""

    _pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]]

    if TYPE_CHECKING:  # the store's own (`stmtflow.stores.postgres.PostgresStore`)

        def _fetch(
            self, conn: psycopg.Connection[tuple[Any, ...]], id: str, lock: bool = False
        ) -> Record: ...
        def _one(self, query: str, params: Any) -> tuple[Any, ...] | None: ...

    def get(self, id: str) -> Record:
        with self._pool.connection() as conn:
            return self._fetch(conn, id)

    def list(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int | None = None,
        *,
        parent_id: str | None = None,
    ) -> builtins.list[Record]:
        query, params = list_query(_READ, status, workflow, limit, _MARK, parent_id)
        with self._pool.connection() as conn:
            return [_record(row) for row in conn.execute(query, params).fetchall()]

    # -- pending inputs ---------------------------------------------------------------------

    def inputs(
        self, *, assignee: str | None = None, workflow: str | None = None
    ) -> builtins.list[PendingInput]:
        query, params = input_query(assignee, workflow, _MARK)
        with self._pool.connection() as conn:
            rows = conn.execute(query, params).fetchall()
        read = schema_reader()
        return [from_row(row, read, _dt) for row in rows]

    # -- targets ----------------------------------------------------------------------------

    def set_target(self, workflow: str, target: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO stmtflow_targets (workflow, target) VALUES (%s, %s) "
                "ON CONFLICT (workflow) DO UPDATE SET target = EXCLUDED.target",
                (workflow, target),
            )

    def get_target(self, workflow: str) -> str | None:
        row = self._one("SELECT target FROM stmtflow_targets WHERE workflow = %s", (workflow,))
        return None if row is None else str(row[0])

    def targets(self) -> dict[str, str]:
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT workflow, target FROM stmtflow_targets ORDER BY workflow")
            return {str(w): str(t) for w, t in rows.fetchall()}

    def count_due(self, now: datetime) -> int:
        row = self._one(
            "SELECT count(*) FROM stmtflow_instances WHERE wake_at IS NOT NULL AND wake_at <= %s",
            (aware(now, "now"),),
        )
        return int(row[0]) if row else 0

    def count_instances(self) -> dict[tuple[str, str], int]:
        with self._pool.connection() as conn:
            rows = conn.execute(COUNT_INSTANCES).fetchall()
        return {(str(w), str(s)): int(n) for w, s, n in rows}

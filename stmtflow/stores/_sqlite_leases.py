"""The SQLite store's leases: claiming due records, claiming one, renewing, releasing.

Every claim runs under the file's write lock (``BEGIN IMMEDIATE``), so two claimers never take
the same record; each increments the record's fence (`stmtflow.stores.base`). A mixin of
`stmtflow.stores.sqlite.SQLiteStore`.
"""

from __future__ import annotations

import builtins
import contextlib
import sqlite3
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from stmtflow.stores._sqlite_rows import _LEASE_FREE, _READ, _returned, _ts
from stmtflow.stores.base import (
    Record,
    aware,
    check_claim_args,
    claim_order,
    lease_conflict,
    refusal,
    utcnow,
    with_changes,
)

__all__ = ["SQLiteLeases"]


class SQLiteLeases:
    """The lease methods of the `Store` contract over the store's connections."""

    if TYPE_CHECKING:  # the store's own (`stmtflow.stores.sqlite.SQLiteStore`)

        def _conn(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
        def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
        def _fetch(self, conn: sqlite3.Connection, id: str) -> Record: ...
        def _whole(self, conn: sqlite3.Connection, row: sqlite3.Row) -> Record: ...

    def claim_due(
        self, now: datetime, owner: str, lease: timedelta, limit: int = 10
    ) -> builtins.list[Record]:
        now = aware(now, "now")
        check_claim_args(owner, lease, limit)
        params = {"now": _ts(now), "limit": limit}
        # Two index-backed probes (the partial indexes on wake_at and on status='resuming'), so
        # the cost follows the due records, not the table; the write lock makes them atomic.
        due_sql = (
            f"SELECT {_READ} FROM stmtflow_instances "
            f"WHERE wake_at IS NOT NULL AND wake_at <= :now AND {_LEASE_FREE} "
            "ORDER BY wake_at LIMIT :limit"
        )
        resuming_sql = (
            f"SELECT {_READ} FROM stmtflow_instances "
            f"WHERE status = 'resuming' AND {_LEASE_FREE} ORDER BY created_at LIMIT :limit"
        )
        posted_sql = (
            f"SELECT {_READ} FROM stmtflow_instances WHERE id IN "
            "(SELECT instance_id FROM stmtflow_inbox WHERE status = 'new') "
            f"AND {_LEASE_FREE} LIMIT :limit"
        )
        probes = (due_sql, resuming_sql, posted_sql)
        with self._write() as conn:
            rows = [row for sql in probes for row in conn.execute(sql, params)]
            found = {r.id: r for r in (self._whole(conn, row) for row in rows)}
            chosen = claim_order(list(found.values()))[:limit]
            return [self._take(conn, r, owner, now + lease) for r in chosen]

    def _take(
        self, conn: sqlite3.Connection, current: Record, owner: str, expires: datetime
    ) -> Record:
        """Lease ``current``, read under the write lock (so it is what the row holds)."""
        fence = current.fence + 1
        cursor = conn.execute(
            "UPDATE stmtflow_instances SET lease_owner = ?, lease_expires = ?, fence = fence + 1 "
            "WHERE id = ?",
            (owner, _ts(expires), current.id),
        )
        assert cursor.rowcount == 1  # under the write lock the row cannot have vanished
        return with_changes(current, lease_owner=owner, lease_expires=expires, fence=fence)

    def claim(self, id: str, owner: str, lease: timedelta, now: datetime | None = None) -> Record:
        now = utcnow() if now is None else aware(now, "now")
        check_claim_args(owner, lease)
        with self._write() as conn:
            current = self._fetch(conn, id)
            if current.lease_owner not in (None, owner) and current.lease_live(now):
                raise lease_conflict(current, owner)
            return self._take(conn, current, owner, now + lease)

    def renew(
        self,
        id: str,
        owner: str,
        fence: int,
        lease: timedelta,
        now: datetime | None = None,
    ) -> Record:
        now = utcnow() if now is None else aware(now, "now")
        check_claim_args(owner, lease)
        with self._conn() as conn:
            row = _returned(
                conn.execute(
                    "UPDATE stmtflow_instances SET lease_expires = ? "
                    f"WHERE id = ? AND lease_owner = ? AND fence = ? RETURNING {_READ}",
                    (_ts(now + lease), id, owner, fence),
                )
            )
            if row is None:
                current = self._fetch(conn, id)
                raise refusal(current, current.version, fence)
            return self._whole(conn, row)

    def release(self, id: str, owner: str, fence: int) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "UPDATE stmtflow_instances SET lease_owner = NULL, lease_expires = NULL "
                "WHERE id = ? AND lease_owner = ? AND fence = ?",
                (id, owner, fence),
            )
            if cur.rowcount == 0:
                self._fetch(conn, id)  # NotFound when missing
                return False
        return True

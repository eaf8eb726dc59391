"""The SQL the SQLite and PostgreSQL stores share, written once for both parameter styles.

Both backends use named parameters; ``mark`` spells one (``:name`` for sqlite3,
``%(name)s`` for psycopg). Values that differ by backend (how a datetime is stored) are
converted by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from stmtflow.stores.base import Record, status_value, utcnow

__all__ = ["list_query", "update_params", "update_query"]

Mark = Callable[[str], str]


def list_query(
    columns: str, status: str | None, workflow: str | None, limit: int | None, mark: Mark
) -> tuple[str, dict[str, Any]]:
    """``SELECT`` of instances, optionally filtered, ordered by (created_at, id)."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if status is not None:
        where.append(f"status = {mark('status')}")
        params["status"] = status_value(status)
    if workflow is not None:
        where.append(f"workflow = {mark('workflow')}")
        params["workflow"] = workflow
    sql = f"SELECT {columns} FROM stmtflow_instances"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at, id"
    if limit is not None:
        sql += f" LIMIT {mark('limit')}"
        params["limit"] = int(limit)
    return sql, params


def update_query(columns: str, *, fenced: bool, release: bool, mark: Mark) -> str:
    """The compare-and-set ``UPDATE ... RETURNING`` of `Store.update`.

    Parameters: data, state, status, wake_at, error, now, id, version (and fence when fenced).
    """
    lease = ", lease_owner = NULL, lease_expires = NULL" if release else ""
    sets = ", ".join(
        f"{name} = {mark(name)}" for name in ("data", "state", "status", "wake_at", "error")
    )
    sql = (
        f"UPDATE stmtflow_instances SET {sets}, version = version + 1, "
        f"updated_at = {mark('now')}{lease} "
        f"WHERE id = {mark('id')} AND version = {mark('version')}"
    )
    if fenced:
        sql += f" AND fence = {mark('fence')} AND lease_owner IS NOT NULL"
    return f"{sql} RETURNING {columns}"


def update_params(
    record: Record,
    expected_version: int,
    fence: int | None,
    time: Callable[[datetime | None], Any],
) -> dict[str, Any]:
    """The parameters of `update_query`; ``time`` converts a datetime for the backend."""
    return {
        "data": record.data,
        "state": record.state,
        "status": record.status,
        "wake_at": time(record.wake_at),
        "error": record.error,
        "now": time(utcnow()),
        "id": record.id,
        "version": expected_version,
        "fence": fence,
    }

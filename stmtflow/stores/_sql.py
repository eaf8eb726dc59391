"""The SQL the SQLite and PostgreSQL stores share, written once for both parameter styles.

Both backends use named parameters; ``mark`` spells one (``:name`` for sqlite3,
``%(name)s`` for psycopg). Values that differ by backend (how a datetime is stored) are
converted by the caller. Query builders are cached: their text depends only on their flags.

The writes of `Store.update` and `Store.update_free` are one compare-and-set statement each,
``UPDATE ... WHERE id = ? AND version = ? ... RETURNING`` `KEPT`: the columns such a write
leaves alone (or sets to values the store chose). `written` builds the stored record from the
caller's record and that returned row (read by column name), without reading the row again; no
row returned means the write was refused.

SQLite also has a form of each that leaves ``status`` and ``wake_at`` out of ``SET`` and
requires them to be as stored already (``keep_indexed``): see `stmtflow.stores.sqlite`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from stmtflow.stores.base import Record, status_value, with_changes

__all__ = [
    "COUNT_INSTANCES",
    "KEPT",
    "list_query",
    "update_free_query",
    "update_params",
    "update_query",
    "written",
]

Mark = Callable[[str], str]


class Row(Protocol):
    """A row read by column name: `sqlite3.Row`, psycopg's ``dict_row``."""

    def __getitem__(self, name: str, /) -> Any: ...


COUNT_INSTANCES = (
    "SELECT workflow, status, count(*) FROM stmtflow_instances GROUP BY workflow, status"
)
"""`Store.count_instances`: one row per (workflow type, status) pair, no record read."""

KEPT = "workflow, created_at, fence, lease_owner, lease_expires"
"""What a data write returns: the columns it never changes (the caller's copy of the record may
be stale or forged: the stored values win) and the lease, which it may change."""

_WRITTEN = ("data", "state", "status", "wake_at", "error")


def list_query(
    columns: str,
    status: str | None,
    workflow: str | None,
    limit: int | None,
    mark: Mark,
    parent_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """``SELECT`` of instances, optionally filtered, ordered by (created_at, id)."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if parent_id is not None:
        where.append(f"parent_id = {mark('parent_id')}")
        params["parent_id"] = parent_id
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


_INDEXED = ("status", "wake_at")
"""The written columns that indexes read (see `update_query`'s ``keep_indexed``)."""


def _set_written(mark: Mark, parts: bool, keep_indexed: bool) -> str:
    names = tuple(n for n in _WRITTEN if not (keep_indexed and n in _INDEXED))
    if parts:
        names = (*names, "state_parts")
    sets = ", ".join(f"{name} = {mark(name)}" for name in names)
    return f"{sets}, version = version + 1, updated_at = {mark('updated_at')}"


def _where_kept(mark: Mark, keep_indexed: bool) -> str:
    """With ``keep_indexed``, the condition that the stored `_INDEXED` columns equal the new
    values (SQLite's null-safe ``IS``)."""
    if not keep_indexed:
        return ""
    return "".join(f" AND {name} IS {mark(name)}" for name in _INDEXED)


@functools.cache
def update_query(
    *, fenced: bool, release: bool, mark: Mark, parts: bool = False, keep_indexed: bool = False
) -> str:
    """The compare-and-set ``UPDATE ... RETURNING KEPT`` of `Store.update`.

    Parameters: `update_params` (fence is used only when fenced) and, with ``parts``,
    ``state_parts`` (SQLite's count of state parts, see `stmtflow.stores._sqlite_parts`).

    ``keep_indexed`` (SQLite): leave ``status`` and ``wake_at`` out of ``SET`` and write only
    if the stored ones already equal the new values (null-safe ``IS``). SQLite rewrites the
    index entries of every column ``SET`` names, changed or not; a step's write keeps both.
    """
    lease = ", lease_owner = NULL, lease_expires = NULL" if release else ""
    sql = (
        f"UPDATE stmtflow_instances SET {_set_written(mark, parts, keep_indexed)}{lease} "
        f"WHERE id = {mark('id')} AND version = {mark('version')}" + _where_kept(mark, keep_indexed)
    )
    if fenced:
        sql += f" AND fence = {mark('fence')} AND lease_owner IS NOT NULL"
    return f"{sql} RETURNING {KEPT}"


@functools.cache
def update_free_query(
    *, claim: bool, mark: Mark, parts: bool = False, keep_indexed: bool = False
) -> str:
    """The compare-and-set ``UPDATE ... RETURNING KEPT`` of `Store.update_free` (``parts`` and
    ``keep_indexed`` as for `update_query`).

    Parameters: `update_params`, ``now`` (the lease clock) and, with ``claim``, ``owner`` and
    ``expires``. Without ``claim`` the lease columns are cleared.
    """
    if claim:
        lease = (
            f"lease_owner = {mark('owner')}, lease_expires = {mark('expires')}, fence = fence + 1"
        )
    else:
        lease = "lease_owner = NULL, lease_expires = NULL"
    return (
        f"UPDATE stmtflow_instances SET {_set_written(mark, parts, keep_indexed)}, {lease} "
        f"WHERE id = {mark('id')} AND version = {mark('version')} "
        f"AND (lease_expires IS NULL OR lease_expires < {mark('now')})"
        f"{_where_kept(mark, keep_indexed)} RETURNING {KEPT}"
    )


def update_params(
    record: Record,
    expected_version: int,
    fence: int | None,
    updated_at: Any,
    time: Callable[[datetime | None], Any],
) -> dict[str, Any]:
    """The parameters both writes share; ``time`` converts a datetime for the backend and
    ``updated_at`` is converted already."""
    return {
        "data": record.data,
        "state": record.state,
        "status": record.status,
        "wake_at": time(record.wake_at),
        "error": record.error,
        "updated_at": updated_at,
        "id": record.id,
        "version": expected_version,
        "fence": fence,
    }


def written(
    record: Record,
    kept: Row,
    expected_version: int,
    updated_at: datetime,
    time: Callable[[Any], datetime | None],
) -> Record:
    """The stored record after a data write of ``record`` at ``expected_version`` that returned
    the row ``kept`` (the `KEPT` columns by name; ``time`` converts the backend's datetimes
    back)."""
    return with_changes(
        record,
        workflow=kept["workflow"],
        created_at=time(kept["created_at"]),
        fence=kept["fence"],
        lease_owner=kept["lease_owner"],
        lease_expires=time(kept["lease_expires"]),
        version=expected_version + 1,
        updated_at=updated_at,
    )

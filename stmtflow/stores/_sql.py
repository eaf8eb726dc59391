"""The SQL the SQLite and PostgreSQL stores share, written once for both parameter styles.

Both backends use named parameters; ``mark`` spells one (``:name`` for sqlite3,
``%(name)s`` for psycopg). Values that differ by backend (how a datetime is stored) are
converted by the caller. Query builders are cached: their text depends only on their flags.

The writes of `Store.update` and `Store.update_free` return only `KEPT`, the columns such a
write leaves alone (or sets to values the store chose); `written` builds the stored record from
the caller's record and those, without re-reading the row.

SQLite can skip even that: a write built with ``same`` (its null-safe equality, ``IS``) also
requires the stored `KEPT` columns to equal the caller's (`kept_params`), so when it changes a
row the caller's copy was exact and `written_as_sent` builds the result with nothing returned.
It changes nothing when the copy was stale; the store then writes again with ``RETURNING``.

A ``slim`` write (SQLite, with ``same``) also leaves out the indexed columns a step seldom
changes, ``status`` and ``wake_at``, and requires instead that the stored ones already equal the
new values: SQLite rewrites the entries of every index on a column named in ``SET``, changed or
not (three of them here), which costs a step's commit some 5 µs of CPU and a few pages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from stmtflow.stores.base import Record, status_value, with_changes

__all__ = [
    "KEPT",
    "kept_params",
    "list_query",
    "update_free_query",
    "update_params",
    "update_query",
    "written",
    "written_as_sent",
]

Mark = Callable[[str], str]

KEPT = "workflow, created_at, fence, lease_owner, lease_expires"
"""What a data write returns: the columns it never changes (the caller's copy of the record may
be stale or forged: the stored values win) and the lease, which it may change."""

_WRITTEN = ("data", "state", "status", "wake_at", "error")

_INDEXED = ("status", "wake_at")
"""The written columns an index reads: a ``slim`` write checks them instead of setting them."""


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


def _set_written(mark: Mark, parts: bool, slim: bool) -> str:
    names = tuple(n for n in _WRITTEN if n not in _INDEXED) if slim else _WRITTEN
    if parts:
        names = (*names, "state_parts")
    sets = ", ".join(f"{name} = {mark(name)}" for name in names)
    return f"{sets}, version = version + 1, updated_at = {mark('updated_at')}"


def _ending(mark: Mark, same: str | None, slim: bool) -> str:
    """``RETURNING KEPT``, or with ``same`` the condition that the stored `KEPT` columns equal
    the `kept_params` (and, ``slim``, that the stored `_INDEXED` ones equal the new values)."""
    if same is None:
        assert not slim, "a slim write is an exact one (same)"
        return f" RETURNING {KEPT}"
    checked = [(column, "kept_" + column) for column in KEPT.split(", ")]
    if slim:
        checked += [(column, column) for column in _INDEXED]
    return "".join(f" AND {column} {same} {mark(name)}" for column, name in checked)


@functools.cache
def update_query(
    *,
    fenced: bool,
    release: bool,
    mark: Mark,
    same: str | None = None,
    parts: bool = False,
    slim: bool = False,
) -> str:
    """The compare-and-set ``UPDATE ... RETURNING KEPT`` of `Store.update` (with ``same``:
    ``UPDATE`` only if the caller's `KEPT` columns are exact; ``slim``: and only if ``status``
    and ``wake_at`` are unchanged, without setting them; see the module docstring).

    Parameters: `update_params` (fence is used only when fenced), with ``same`` `kept_params`,
    with ``parts`` ``state_parts`` (SQLite's count of state parts, see
    `stmtflow.stores._sqlite_parts`).
    """
    lease = ", lease_owner = NULL, lease_expires = NULL" if release else ""
    sql = (
        f"UPDATE stmtflow_instances SET {_set_written(mark, parts, slim)}{lease} "
        f"WHERE id = {mark('id')} AND version = {mark('version')}"
    )
    if fenced:
        sql += f" AND fence = {mark('fence')} AND lease_owner IS NOT NULL"
    return sql + _ending(mark, same, slim)


@functools.cache
def update_free_query(
    *, claim: bool, mark: Mark, same: str | None = None, parts: bool = False, slim: bool = False
) -> str:
    """The single-statement ``UPDATE ... RETURNING KEPT`` of `Store.update_free` (``same``,
    ``parts`` and ``slim`` as for `update_query`).

    Parameters: `update_params`, ``now`` (the lease clock) and, with ``claim``, ``owner`` and
    ``expires``; with ``same`` `kept_params`. Without ``claim`` the lease columns are cleared.
    """
    if claim:
        lease = (
            f"lease_owner = {mark('owner')}, lease_expires = {mark('expires')}, fence = fence + 1"
        )
    else:
        lease = "lease_owner = NULL, lease_expires = NULL"
    return (
        f"UPDATE stmtflow_instances SET {_set_written(mark, parts, slim)}, {lease} "
        f"WHERE id = {mark('id')} AND version = {mark('version')} "
        f"AND (lease_expires IS NULL OR lease_expires < {mark('now')})" + _ending(mark, same, slim)
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
    kept: tuple[Any, ...],
    expected_version: int,
    updated_at: datetime,
    time: Callable[[Any], datetime | None],
) -> Record:
    """The stored record after a data write of ``record`` at ``expected_version`` that returned
    ``kept`` (the `KEPT` columns; ``time`` converts the backend's datetimes back)."""
    workflow, created_at, fence, lease_owner, lease_expires = kept
    return with_changes(
        record,
        workflow=workflow,
        created_at=time(created_at),
        fence=fence,
        lease_owner=lease_owner,
        lease_expires=time(lease_expires),
        version=expected_version + 1,
        updated_at=updated_at,
    )


def kept_params(record: Record, time: Callable[[datetime | None], Any]) -> dict[str, Any]:
    """The caller's `KEPT` columns, the parameters of a write built with ``same``."""
    return {
        "kept_workflow": record.workflow,
        "kept_created_at": time(record.created_at),
        "kept_fence": record.fence,
        "kept_lease_owner": record.lease_owner,
        "kept_lease_expires": time(record.lease_expires),
    }


def written_as_sent(
    record: Record, expected_version: int, updated_at: datetime, **lease: Any
) -> Record:
    """The stored record after a write built with ``same`` changed the row: the caller's
    record, its version and ``updated_at`` advanced and the ``lease`` columns the write set."""
    return with_changes(record, version=expected_version + 1, updated_at=updated_at, **lease)

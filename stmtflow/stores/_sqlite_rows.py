"""How the SQLite store spells its rows: the columns it reads, its times as text, a `Record`.

Datetimes are stored as fixed-width ISO-8601 text in UTC with microseconds (`_ts`, read back
by `_dt`), so text comparison in SQL is time comparison (`stmtflow.stores.sqlite`).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from stmtflow.stores.base import Record, aware

__all__ = ["_COLUMNS", "_LEASE_FREE", "_MARK", "_READ", "_dt", "_record", "_returned", "_ts"]


_COLUMNS = (
    "id, workflow, data, state, status, version, wake_at, lease_owner, lease_expires, fence, "
    "error, created_at, updated_at, parent_id, root_id, parent_event, on_parent_end"
)
_READ = (
    _COLUMNS + ", state_parts, EXISTS (SELECT 1 FROM stmtflow_inbox AS m WHERE "
    "m.instance_id = stmtflow_instances.id AND m.status != 'done') AS inbox"
)
"""What a read selects: a record's columns, how many parts its state has (see `_whole`), and
whether its inbox holds messages not yet taken."""

_MARK = lambda name: f":{name}"  # noqa: E731 - a one-line spelling rule
_LEASE_FREE = "(lease_expires IS NULL OR lease_expires < :now)"


def _ts(value: datetime | None) -> str | None:
    """A datetime as fixed-width UTC ISO text (see the module docstring)."""
    if value is None:
        return None
    return aware(value, "datetime").isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text).astimezone(UTC)


def _returned(cursor: sqlite3.Cursor) -> sqlite3.Row | None:
    """The one row a write's ``RETURNING`` gave, read to the end so the write commits (and any
    commit error is raised) here rather than whenever the cursor is collected."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


def _record(row: sqlite3.Row, inbox: bool = False) -> Record:
    """The record of a row read with `_COLUMNS` (with `_READ`, its state may be just the head)."""
    return Record(
        id=row["id"],
        workflow=row["workflow"],
        data=row["data"],
        state=row["state"],
        status=row["status"],
        version=row["version"],
        wake_at=_dt(row["wake_at"]),
        lease_owner=row["lease_owner"],
        lease_expires=_dt(row["lease_expires"]),
        fence=row["fence"],
        error=row["error"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
        parent_id=row["parent_id"],
        root_id=row["root_id"] or row["id"],
        parent_event=row["parent_event"],
        on_parent_end=row["on_parent_end"],
        inbox=inbox,
    )

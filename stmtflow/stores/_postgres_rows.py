"""How the PostgreSQL store spells its rows: the columns it reads, its parameters, a `Record`.

Times are ``timestamptz``, which psycopg adapts both ways (`_same`); read back in UTC (`_dt`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stmtflow.stores.base import Record

__all__ = ["_COLUMNS", "_INBOX", "_MARK", "_READ", "_dt", "_record", "_same"]


_COLUMNS = (
    "id, workflow, data, state, status, version, wake_at, lease_owner, lease_expires, fence, "
    "error, created_at, updated_at, parent_id, root_id, parent_event, on_parent_end"
)
_INBOX = (
    "EXISTS (SELECT 1 FROM stmtflow_inbox AS m WHERE m.instance_id = stmtflow_instances.id "
    "AND m.status <> 'done')"
)
_READ = f"{_COLUMNS}, {_INBOX}"
"""What a read selects: a record's columns, and whether its inbox holds messages not yet taken."""


def _same(value: datetime | None) -> datetime | None:
    return value  # psycopg adapts datetimes itself


_MARK = lambda name: f"%({name})s"  # noqa: E731 - a one-line spelling rule


def _dt(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo is UTC else value.astimezone(UTC)


def _record(row: tuple[Any, ...]) -> Record:
    """The record of a row read with `_COLUMNS` (or `_READ`: then with its inbox flag)."""
    id_, workflow, data, state, status, version, wake_at, owner, expires, fence = row[:10]
    error, c, u, parent_id, root_id, parent_event, on_parent_end = row[10:17]
    return Record(
        id=id_,
        workflow=workflow,
        data=data,
        state=state,
        status=status,
        version=version,
        wake_at=_dt(wake_at),
        lease_owner=owner,
        lease_expires=_dt(expires),
        fence=fence,
        error=error,
        created_at=_dt(c),
        updated_at=_dt(u),
        parent_id=parent_id,
        root_id=root_id or id_,
        parent_event=parent_event,
        on_parent_end=on_parent_end,
        inbox=bool(row[17]) if len(row) > 17 else False,
    )

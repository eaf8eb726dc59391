"""How values travel between the Redis store and its scripts: times, optional values, hashes.

Times are decimal strings of microseconds since the Unix epoch (exact as sorted-set scores,
which are doubles, until the year 2255). An optional script argument is ``""`` for None and
``"=value"`` for a value, so an empty string stays distinguishable from None.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from stmtflow.stores.base import Record

__all__ = ["fields", "micros", "opt", "opt_time", "record_from", "time_from"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def micros(value: datetime) -> str:
    return str((value - _EPOCH) // _MICRO)


def time_from(text: str | None) -> datetime | None:
    return None if text is None else _EPOCH + timedelta(microseconds=int(text))


def opt(value: str | None) -> str:
    """An optional script argument: ``""`` for None, ``"=value"`` otherwise."""
    return "" if value is None else "=" + value


def opt_time(value: datetime | None) -> str:
    return "" if value is None else "=" + micros(value)


def fields(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def record_from(flat: Sequence[str]) -> Record:
    """A record from its hash's fields as a script returns them (field, value, ...)."""
    f = fields(flat)
    return Record(
        id=f["id"],
        workflow=f["workflow"],
        data=f["data"],
        state=f["state"],
        status=f["status"],
        version=int(f["version"]),
        wake_at=time_from(f.get("wake_at")),
        lease_owner=f.get("lease_owner"),
        lease_expires=time_from(f.get("lease_expires")),
        fence=int(f["fence"]),
        error=f.get("error"),
        created_at=time_from(f["created_at"]),
        updated_at=time_from(f["updated_at"]),
        parent_id=f.get("parent_id"),
        root_id=f.get("root_id", f["id"]),
        parent_event=f.get("parent_event"),
        on_parent_end=f.get("on_parent_end"),
        inbox=f.get("inbox") == "1",
    )

"""The `Record` every store keeps, and the time and status values it holds.

A record's datetimes are aware and in UTC (`aware`, `utcnow`), its status the plain
`WorkflowStatus` string (`status_value`); `with_changes` copies a record a store knows to be
canonical without checking it again. Re-exported from `stmtflow.stores.base`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from stmtflow.state import WorkflowStatus

__all__ = ["Record", "aware", "status_value", "utcnow", "with_changes"]


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def status_value(status: str) -> str:
    """``status`` as the plain `WorkflowStatus` string; an unknown one is a `ValueError`."""
    try:
        return WorkflowStatus(status).value
    except ValueError:
        allowed = ", ".join(s.value for s in WorkflowStatus)
        raise ValueError(f"unknown status {status!r} (expected one of {allowed})") from None


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")
    return value.astimezone(UTC)


def aware(value: datetime, name: str) -> datetime:
    """``value`` converted to UTC; a naive datetime is a `ValueError` naming ``name``."""
    result = _utc(value, name)
    assert result is not None
    return result


@dataclass(frozen=True, slots=True)
class Record:
    """One stored workflow instance. Frozen: change it with `dataclasses.replace` (stores, which
    know their values are canonical, use the unchecked `with_changes`).

    Datetimes are always timezone-aware and returned in UTC (a naive one is a `ValueError`).
    ``data`` and ``state`` are JSON text that the store keeps byte for byte and never parses.

    Example:
        >>> import dataclasses
        >>> rec = Record(id="order-1", workflow="Order", data='{"paid": false}', state="{}")
        >>> dataclasses.replace(rec, status="waiting").status
        'waiting'
    """

    id: str
    """The instance id (unique in the store)."""
    workflow: str
    """The workflow type name; fixed at `Store.create`."""
    data: str
    """The workflow data as JSON text."""
    state: str
    """The execution `State` as JSON text."""
    status: str = WorkflowStatus.RESUMING.value
    """One of the `WorkflowStatus` values (stored as the plain string)."""
    version: int = 0
    """Starts at 1 when created; +1 on every `Store.update`. Claims and releases keep it."""
    wake_at: datetime | None = None
    """Next wake-up: the earliest timer deadline or retry time; None when nothing is scheduled."""
    lease_owner: str | None = None
    """Who holds the lease, or None."""
    lease_expires: datetime | None = None
    """When the lease lapses (it is live while ``lease_expires >= now``), or None."""
    fence: int = 0
    """Fencing token: +1 on every claim; 0 for a record never claimed."""
    error: str | None = None
    """The last error's text, or None."""
    created_at: datetime | None = None
    """When the record was created (None before it is stored, unless the caller sets it)."""
    updated_at: datetime | None = field(default=None)
    """When the record was last written (set by the store)."""
    parent_id: str | None = None
    """The instance that started this one as a child (`Child`, `Call`, `Start`), or None."""
    root_id: str | None = None
    """The top of this instance's tree of parents: its own id for an instance no parent
    started (a store sets it at `Store.create` when None)."""
    parent_event: str | None = None
    """Where this child's end is delivered: the parent's armed event as `CallbackRequest`
    JSON (thread, event name, pc); None for a child nobody waits on (`Start`) and for roots."""
    on_parent_end: str | None = None
    """``"cancel"`` (cancelled with its parent) or ``"abandon"`` (outlives it); None for roots."""
    inbox: bool = False
    """True when the instance's inbox held messages not yet taken when the record was read (a
    write returns the value the caller's record had)."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"a record id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.workflow, str) or not self.workflow:
            raise ValueError(f"record {self.id!r}: workflow must be a non-empty type name")
        try:
            object.__setattr__(self, "status", status_value(self.status))
        except ValueError as exc:
            raise ValueError(f"record {self.id!r}: {exc}") from None
        for name in ("wake_at", "lease_expires", "created_at", "updated_at"):
            object.__setattr__(self, name, _utc(getattr(self, name), f"{self.id!r}.{name}"))
        if (self.lease_owner is None) != (self.lease_expires is None):
            raise ValueError(
                f"record {self.id!r}: lease_owner and lease_expires are set together or not at all"
            )

    def lease_live(self, now: datetime) -> bool:
        """True when someone holds a lease that has not lapsed at ``now``."""
        return self.lease_expires is not None and self.lease_expires >= aware(now, "now")


_FIELD_SETTERS: tuple[tuple[str, Any], ...] = tuple(
    (f.name, Record.__dict__[f.name].__set__) for f in fields(Record)
)


def with_changes(record: Record, **changes: Any) -> Record:
    """A copy of ``record`` with ``changes`` applied, built WITHOUT `Record`'s validation.

    For values already in canonical form: UTC-aware datetimes (``tzinfo`` is `datetime.UTC`),
    ``status`` as the plain `WorkflowStatus` string, the lease fields set together; no
    validation. Stores use it for records they build from values they know are canonical (a
    validated record, the store's own clock); anything from a user goes through `Record` or
    `dataclasses.replace`, which check. An unknown field name is a `TypeError`.

    Example:
        >>> rec = Record(id="a", workflow="Order", data="{}", state="{}")
        >>> with_changes(rec, version=2, data='{"n": 1}').version
        2
    """
    new = object.__new__(Record)
    for name, set_value in _FIELD_SETTERS:
        set_value(new, changes.pop(name) if name in changes else getattr(record, name))
    if changes:
        raise TypeError(f"Record has no field(s) {', '.join(sorted(changes))}")
    return new

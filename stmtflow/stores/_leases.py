"""Compare-and-set and leases, as every backend applies them: why a write or claim is refused,
the checks of a claim's arguments, and the order due records are claimed in.

Re-exported from `stmtflow.stores.base`, whose docstring states the rules.
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta

from stmtflow.errors import ConflictError
from stmtflow.stores._record import Record, aware, utcnow

__all__ = ["check_claim_args", "claim_order", "free_lease", "lease_conflict", "refusal"]


def refusal(
    current: Record, expected_version: int, fence: int | None, now: datetime | None = None
) -> ConflictError:
    """The `ConflictError` explaining why a write against ``current`` was refused.

    With ``now`` (a refused `Store.update_free`), a lease live at ``now`` is the reason when the
    version matched.
    """
    if current.version != expected_version:
        return ConflictError(
            f"workflow instance {current.id!r} was changed by another writer: "
            f"expected version {expected_version}, found version {current.version}"
        )
    if now is not None and current.lease_live(now):
        return ConflictError(f"{_leased(current)}; write at version {expected_version} refused")
    if fence is not None and (current.fence != fence or current.lease_owner is None):
        holder = (
            f"now held by {current.lease_owner!r} with fence {current.fence}"
            if current.lease_owner is not None
            else f"now released (fence {current.fence})"
        )
        return ConflictError(
            f"workflow instance {current.id!r}: the lease with fence {fence} is no longer held "
            f"({holder}); write at version {expected_version} refused"
        )
    return ConflictError(f"workflow instance {current.id!r}: write lost a race; retry")


def lease_conflict(current: Record, owner: str) -> ConflictError:
    """The `ConflictError` for a claim refused because another owner holds a live lease."""
    return ConflictError(f"{_leased(current)}; {owner!r} cannot claim it")


def _leased(current: Record) -> str:
    """Who holds ``current``'s lease and until when, for the messages of refused writes."""
    until = current.lease_expires.isoformat() if current.lease_expires else "?"
    return f"workflow instance {current.id!r} is leased by {current.lease_owner!r} until {until}"


def check_claim_args(owner: str, lease: timedelta, limit: int = 1) -> None:
    """Reject an empty owner, a non-positive lease or limit with a `ValueError`."""
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"a lease owner must be a non-empty string, got {owner!r}")
    if not isinstance(lease, timedelta) or lease <= timedelta(0):
        raise ValueError(f"a lease must be a positive timedelta, got {lease!r}")
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"a claim limit must be a positive int, got {limit!r}")


def free_lease(
    now: datetime, owner: str | None, lease: timedelta | None
) -> tuple[datetime, datetime | None]:
    """`Store.update_free`'s checked arguments: ``now`` in UTC and the expiry of the lease it
    takes (None without ``owner``). A naive ``now``, an owner without a positive lease, or a
    lease without an owner is a `ValueError`."""
    now = aware(now, "now")
    if owner is None:
        if lease is not None:
            raise ValueError(f"a lease ({lease!r}) needs an owner to hold it")
        return now, None
    if lease is None:
        raise ValueError(f"owner {owner!r} needs a lease (a positive timedelta)")
    check_claim_args(owner, lease)
    return now, now + lease


def claim_order(records: builtins.list[Record]) -> builtins.list[Record]:
    """``records`` in claim order: by wake-up time (none first: crash leftovers), then id."""
    return sorted(
        records, key=lambda r: (r.wake_at is not None, r.wake_at or r.created_at or utcnow(), r.id)
    )

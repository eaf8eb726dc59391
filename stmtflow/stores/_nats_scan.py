"""Reading the NATS store's indexes: due work (claim, count) and listings.

A tick reads the hour markers (one request; one subject per hour that holds wake-ups), the
minute markers of the due hours (one request each), then, for the resuming slot and each due
minute, the subjects of its entries (one request each) and
the records they name (concurrently). Each entry is judged against its record
(`stmtflow.stores._nats_client.verdict`): live entries lead to claims, stale ones are dropped,
pending ones are left for their writer (or repaired once older than the grace period). A minute
found empty loses its marker. The cost follows the due entries, not the number of records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta

from stmtflow.stores._nats_client import Client, gather_reads, verdict
from stmtflow.stores._nats_keys import (
    RESUMING_SLOT,
    Stored,
    micros,
    parse_due,
    parse_status,
    slot_of,
)
from stmtflow.stores.base import Record, claim_order, with_changes

__all__ = ["claim_due", "count_due", "listing", "taken"]

_BEFORE_ALL = -(2**62)
"""A minute before any wake-up: taking up to it takes the work without a wake-up only."""

_READ_BATCH = 256
"""Records a listing reads concurrently."""


def taken(current: Record, owner: str, expires: datetime) -> Record:
    """``current`` claimed by ``owner`` until ``expires`` (fence + 1)."""
    return with_changes(current, lease_owner=owner, lease_expires=expires, fence=current.fence + 1)


def _claimable(rec: Record, now: datetime) -> bool:
    if rec.lease_live(now):
        return False
    return rec.status == "resuming" or (rec.wake_at is not None and rec.wake_at <= now)


async def _due_slots(c: Client, now: datetime) -> list[str]:
    """The resuming slot, then every minute slot up to ``now`` that has a marker, in order.

    The hour markers are read first (one request), then the minute markers of each due hour
    (one request each: normally the current hour alone). An hour without minute markers loses
    its marker.
    """
    await c.ready()
    names = c.names
    last = slot_of(now)
    found = await c.subjects(names.slot_stream, names.hours)
    hours = sorted(h for h in (int(s.rsplit(".", 1)[1]) for s in found) if h <= last // 60)
    slots = [RESUMING_SLOT]
    for hour in hours:
        minutes = sorted(int(s.rsplit(".", 1)[1]) for s in await _minutes(c, hour))
        if not minutes:
            await c.drop_marker(names.hour(hour), _none(_minutes(c, hour)))
        slots += [str(m) for m in minutes if m <= last]
    return slots


async def _minutes(c: Client, hour: int) -> list[str]:
    return await c.subjects(c.names.slot_stream, c.names.minutes(hour))


async def _none(found: Awaitable[list[str]]) -> bool:
    return not await found


async def _live(c: Client, slot: str) -> list[Stored]:
    """The records the entries of ``slot`` name live; stale entries are dropped on the way."""
    names = c.names
    entries = [
        (s, *parse_due(s)) for s in await c.subjects(names.due_stream, names.due_filter(slot))
    ]
    stored = await gather_reads(c, (id for _, _, id, _ in entries))
    live: dict[str, Stored] = {}
    stale: list[str] = []
    pending = False
    for subject, _, id, version in entries:
        found = stored[id]
        judged = verdict(found, subject, version, names)
        if judged == "live" and found is not None:
            live[id] = found
        elif judged == "stale":
            stale.append(subject)
        else:
            pending = True
            c.later(c.repair(found, subject, names.due_stream))
    if stale:
        await c.purge(stale)
    if not live and not pending and slot != RESUMING_SLOT:
        entries_left = c.subjects(names.due_stream, names.due_filter(slot))
        await c.drop_marker(names.marker(int(slot)), _none(entries_left))
    return list(live.values())


async def _take(
    c: Client, current: Stored, owner: str, now: datetime, lease: timedelta
) -> Record | None:
    """Claim one live record by compare-and-set; on a lost race, read it again and retry once."""
    for _ in range(2):
        if not _claimable(current.record, now):
            return None
        new = taken(current.record, owner, now + lease)
        if await c.write(current, new) is not None:
            return new
        again = await c.read(current.record.id)
        if again is None:
            return None
        current = again
    return None


async def claim_due(
    c: Client, now: datetime, owner: str, lease: timedelta, limit: int
) -> list[Record]:
    """Claim in `claim_order` across slots: resuming work without a wake-up first, then by
    wake-up time, the resuming work with one merged in where its time falls."""
    claimed: list[Record] = []
    pool: dict[str, Stored] = {}

    async def take(upto: int | None) -> None:
        """Claim from the pool what sorts before the end of minute ``upto`` (None: all)."""
        ready = claim_order([s.record for s in pool.values()])
        ready = [
            r for r in ready if upto is None or r.wake_at is None or slot_of(r.wake_at) <= upto
        ]
        chosen = ready[: limit - len(claimed)]
        got = await asyncio.gather(*(_take(c, pool.pop(r.id), owner, now, lease) for r in chosen))
        claimed.extend(r for r in got if r is not None)

    for slot in await _due_slots(c, now):
        pool.update((s.record.id, s) for s in await _live(c, slot) if _claimable(s.record, now))
        await take(_BEFORE_ALL if slot == RESUMING_SLOT else int(slot))
        if len(claimed) >= limit:
            return claim_order(claimed)
    await take(None)
    return claim_order(claimed)


async def count_due(c: Client, now: datetime) -> int:
    due = set()
    for slot in await _due_slots(c, now):
        for s in await _live(c, slot):
            if s.record.wake_at is not None and s.record.wake_at <= now:
                due.add(s.record.id)
    return len(due)


async def listing(
    c: Client, status: str | None, workflow: str | None, limit: int | None
) -> list[Record]:
    """Records by (created_at, id), filtered, from the status index (its stale entries go)."""
    await c.ready()
    names = c.names
    subjects = await c.subjects(names.status_stream, names.status_filter(status, workflow))
    entries = sorted(
        (created, id, subject, version)
        for subject in subjects
        for _, created, id, version in [parse_status(subject)]
    )
    order = list(dict.fromkeys((created, id) for created, id, _, _ in entries))
    by_id: dict[str, list[tuple[str, int]]] = {}
    for _, id, subject, version in entries:
        by_id.setdefault(id, []).append((subject, version))
    found: list[Record] = []
    stale: list[str] = []
    for start in range(0, len(order), _READ_BATCH):
        batch = order[start : start + _READ_BATCH]
        stored = await gather_reads(c, (id for _, id in batch))
        for _, id in batch:
            current = stored[id]
            for subject, version in by_id[id]:
                judged = verdict(current, subject, version, names)
                if judged == "stale":
                    stale.append(subject)
                elif judged == "pending":
                    c.later(c.repair(current, subject, names.status_stream))
            if current is None:
                continue
            rec = current.record
            if (status is None or rec.status == status) and (
                workflow is None or rec.workflow == workflow
            ):
                found.append(rec)
                if limit is not None and len(found) >= limit:
                    break
        if limit is not None and len(found) >= limit:
            break
    if stale:
        c.later(c.purge(stale))
    found.sort(key=lambda r: (micros(r.created_at) if r.created_at else 0, r.id))
    return found

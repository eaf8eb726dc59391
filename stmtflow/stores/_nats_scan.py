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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stmtflow.stores._inputs import PendingInput, matching
from stmtflow.stores._nats_client import Client, gather_reads, verdict
from stmtflow.stores._nats_inbox import finish
from stmtflow.stores._nats_keys import (
    RESUMING_SLOT,
    Stored,
    micros,
    slot_of,
    untoken,
)
from stmtflow.stores.base import Record, claim_order, with_changes

__all__ = ["children", "claim_due", "count_due", "inputs", "listing", "taken"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_READ_BATCH = 256
"""Records a listing reads concurrently."""


def parse_due(subject: str) -> tuple[tuple[int, int], str, int]:
    """(order, id, version) of a due subject: order as (k, t), see the module docstring."""
    *_, k, t, id_tok, version = subject.split(".")
    return (int(k), int(t)), untoken(id_tok), int(version)


def parse_status(subject: str) -> tuple[str, int, str, int]:
    """(status, created micros, id, version) of a status subject."""
    *_, status, _wf, created, id_tok, version = subject.split(".")
    return status, int(created), untoken(id_tok), int(version)


def parse_child(subject: str) -> tuple[int, str]:
    """(created micros, id) of a children subject."""
    *_, created, id_tok = subject.split(".")
    return int(created), untoken(id_tok)


def parse_input(subject: str) -> tuple[str, int]:
    """(id, version) of a subject ending in ``<id>.<v>``: an input entry, an ended entry."""
    *_, id_tok, version = subject.split(".")
    return untoken(id_tok), int(version)


def taken(current: Record, owner: str, expires: datetime) -> Record:
    """``current`` claimed by ``owner`` until ``expires`` (fence + 1)."""
    return with_changes(current, lease_owner=owner, lease_expires=expires, fence=current.fence + 1)


def _claimable(stored: Stored, now: datetime) -> bool:
    rec = stored.record
    if rec.lease_live(now):
        return False
    if stored.mail.urgent:  # a new message to take, an intent to finish
        return True
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
    found = await c.subjects(names.hour_stream, names.hours)
    hours = sorted(h for h in (int(s.rsplit(".", 1)[1]) for s in found) if h <= last // 60)
    slots = [RESUMING_SLOT]
    for hour in hours:
        minutes = sorted(int(s.rsplit(".", 1)[1]) for s in await _minutes(c, hour))
        if not minutes:
            await c.drop_marker(names.hour(hour), _minutes(c, hour))
        slots += [str(m) for m in minutes if m <= last]
    return slots


async def _minutes(c: Client, hour: int) -> list[str]:
    return await c.subjects(c.names.due_stream, c.names.minutes(hour))


@dataclass(slots=True)
class _Entry:
    subject: str
    slot: str
    order: tuple[int, int]
    id: str
    version: int


async def _entries(c: Client, slots: list[str], now: datetime) -> tuple[list[_Entry], set[str]]:
    """The entries of ``slots`` that may be due at ``now``, in claim order; and the slots that
    also hold entries due later (a wake-up later in the current minute)."""
    names, until = c.names, micros(now)
    found = await asyncio.gather(
        *(c.subjects(names.stream_of(names.due_filter(s)), names.due_filter(s)) for s in slots)
    )
    entries: list[_Entry] = []
    later: set[str] = set()
    for slot, subjects in zip(slots, found, strict=True):
        for subject in subjects:
            order, id, version = parse_due(subject)
            if slot != RESUMING_SLOT and order[1] > until:
                later.add(slot)
            else:
                entries.append(_Entry(subject, slot, order, id, version))
    entries.sort(key=lambda e: (e.order, e.id))
    return entries, later


class _Walk:
    """Reads the records of entries in order, batch by batch, judging each entry."""

    def __init__(self, c: Client, slots: list[str], entries: list[_Entry], later: set[str]) -> None:
        self.c, self.slots, self.entries, self.later = c, slots, entries, later
        self.read = 0
        self.kept: set[str] = set(later)  # slots that keep entries (their markers stay)

    async def next(self, batch: int) -> list[Stored]:
        """The live records of the next ``batch`` entries (stale ones are removed)."""
        names, c = self.c.names, self.c
        chunk = self.entries[self.read : self.read + batch]
        self.read += len(chunk)
        stored = await gather_reads(c, (e.id for e in chunk))
        live: dict[str, Stored] = {}
        stale: list[str] = []
        for e in chunk:
            found = stored[e.id]
            judged = verdict(found, e.subject, e.version, names)
            if judged == "stale":
                stale.append(e.subject)
                continue
            self.kept.add(e.slot)
            if judged == "live" and found is not None:
                live[e.id] = found
            else:
                c.later(c.repair(found, e.subject))
        if stale:
            await c.purge(stale)
        return list(live.values())

    @property
    def done(self) -> bool:
        return self.read >= len(self.entries)

    async def unmark(self) -> None:
        """Drop the markers of the minutes found empty (every entry read and stale)."""
        if not self.done:
            return
        c, names = self.c, self.c.names
        for slot in self.slots:
            if slot != RESUMING_SLOT and slot not in self.kept:
                left = c.subjects(names.due_stream, names.due_filter(slot))
                await c.drop_marker(names.marker(int(slot)), left)


async def _take(
    c: Client, current: Stored, owner: str, now: datetime, lease: timedelta
) -> Record | None:
    """Claim one live record by compare-and-set; on a lost race, read it again and retry once."""
    for _ in range(3):
        if not _claimable(current, now):
            return None
        if current.mail.intent is not None:  # its writer died before applying its batch
            await finish(c, current)
            again = await c.read(current.record.id)
            if again is None:
                return None
            current = again
            continue
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
    """Claim in `claim_order`, reading records only as far as the claims need."""
    slots = await _due_slots(c, now)
    walk = _Walk(c, slots, *await _entries(c, slots, now))
    claimed: list[Record] = []
    while len(claimed) < limit and not walk.done:
        wanted = limit - len(claimed)
        live = await walk.next(max(2 * wanted, 8))
        ready = claim_order([s.record for s in live if _claimable(s, now)])[:wanted]
        by_id = {s.record.id: s for s in live}
        got = await asyncio.gather(*(_take(c, by_id[r.id], owner, now, lease) for r in ready))
        claimed.extend(r for r in got if r is not None)
    await walk.unmark()
    return claim_order(claimed)


async def count_due(c: Client, now: datetime) -> int:
    """Live records with a wake-up at or before ``now`` (resuming work without one is skipped)."""
    slots = await _due_slots(c, now)
    entries, later = await _entries(c, slots, now)
    walk = _Walk(c, slots, [e for e in entries if e.order[0] == 1], later)
    due = {s.record.id for s in await walk.next(len(walk.entries)) if _due(s.record, now)}
    return len(due)


def _due(rec: Record, now: datetime) -> bool:
    return rec.wake_at is not None and rec.wake_at <= now


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
            live = False
            for subject, version in by_id[id]:
                judged = verdict(current, subject, version, names)
                if judged == "stale":
                    stale.append(subject)
                elif judged == "pending":
                    c.later(c.repair(current, subject))
                live = live or judged == "live"
            if current is None or not live:
                continue  # its live entry sorts elsewhere (another creation time: a refused
                # create of the same id announced it) or is not there yet
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


async def children(
    c: Client, parent_id: str, status: str | None, workflow: str | None, limit: int | None
) -> list[Record]:
    """The children of ``parent_id`` by (created_at, id), filtered: one request for its entries
    in the children index, then their records (an entry whose record is missing or names
    another parent is a hint of a create that did not happen, and is skipped)."""
    if limit is not None and limit <= 0:
        return []
    await c.ready()
    names = c.names
    subjects = await c.subjects(names.children_stream, names.children_filter(parent_id))
    entries = sorted((*parse_child(s), s) for s in subjects)
    found: list[Record] = []
    stale: list[str] = []
    for start in range(0, len(entries), _READ_BATCH):
        batch = entries[start : start + _READ_BATCH]
        stored = await gather_reads(c, (id for _, id, _ in batch))
        for created, id, subject in batch:
            current = stored[id]
            if current is None:
                continue  # a create in flight, or one that died before its record
            rec = current.record
            if rec.parent_id != parent_id or created != micros(rec.created_at or _EPOCH):
                stale.append(subject)  # a create refused: the id was taken already
                continue
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
    return found


async def inputs(c: Client, assignee: str | None, workflow: str | None) -> list[PendingInput]:
    """The pending-input rows fitting the filters, from the records their input entries name.

    One request for the entries matching ``in.<assignee>.<workflow>``, then the records of the
    instances they name (a batch at a time): a live entry's record contributes its rows, stale
    entries go, pending ones are left to their writer (or repaired after the grace period).
    """
    await c.ready()
    names = c.names
    subjects = await c.subjects(names.inputs_stream, names.input_filter(assignee, workflow))
    entries = sorted((*parse_input(s), s) for s in subjects)
    ids = list(dict.fromkeys(id for id, _, _ in entries))
    stored: dict[str, Stored | None] = {}
    for start in range(0, len(ids), _READ_BATCH):
        stored.update(await gather_reads(c, ids[start : start + _READ_BATCH]))
    rows: dict[str, tuple[PendingInput, ...]] = {}
    stale: list[str] = []
    for id, version, subject in entries:
        current = stored[id]
        judged = verdict(current, subject, version, names)
        if judged == "live" and current is not None:
            rows[id] = current.inputs
        elif judged == "stale":
            stale.append(subject)
        else:
            c.later(c.repair(current, subject))
    if stale:
        c.later(c.purge(stale))
    return matching((row for found in rows.values() for row in found), assignee, workflow)

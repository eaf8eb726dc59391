"""The NATS store's histories: events in the record up to a tail, then in chunk keys; snapshots.

JetStream KV writes one key at a time, so an event cannot be appended to a key of its own in the
compare-and-set that writes the progress it records. It is written *into the record* instead:

1. **With the checkpoint.** A write's events (`Batch.history`) are numbered on from the
   record's last seq and appended to the record's ``tail`` (`Hist`): they commit with the
   write, or not at all.
2. **Moved idempotently.** When the tail would grow past `TAIL` events, the writer first copies
   the events of the tail it read to the chunk keys ``h.<id>.<created>.<k>`` (`CHUNK` events
   each, merged by seq by compare-and-set, so a copy repeated after a crash, or made by two
   writers at once, changes nothing), and then writes the record without them. The events were
   committed already (they are in the record it read): a crash after the copy leaves them in
   both places, which a reader merges, never in neither.
3. **Read.** `history` reads the record, then the chunks between its first kept seq and the tail,
   concurrently, and merges them by seq.

Snapshots cost nothing until they are needed: the data and state a write with events leaves are
the record's own, so the record only notes the seq they are filed under (``snap``). The write
that next changes the data or state (or files a snapshot of its own) first puts the record's
current data and state under ``s.<id>.<created>.<seq>``, pipelined before its compare-and-set
on the same connection and stream, so it costs no round trip; what it puts is committed data,
so a put repeated by a writer that then loses its race is harmless. The record lists the kept
snapshots exactly (`HistoryWrite.snapshots`); their keys are purged every `TAIL` events, by one
request keeping the newest as many as are listed (snapshots are put in seq order), so up to
`TAIL` more are stored between two purges. Chunks wholly before the first kept seq are purged
after the write that passes them. A crash leaves extra keys, which `prune` removes with the
instance. ``<created>`` (the record's creation time) keeps an
instance created again under a pruned id apart from the old one's keys.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import nats.js.errors

from stmtflow.errors import ConflictError
from stmtflow.stores._history import HistoryEvent, HistoryWrite, Snapshot, numbered

if TYPE_CHECKING:
    from stmtflow.stores._nats_client import Client
    from stmtflow.stores._nats_keys import Stored
    from stmtflow.stores.base import Record

__all__ = ["CHUNK", "NO_HIST", "TAIL", "Hist", "Plan", "hist_doc", "hist_from", "plan"]

TAIL = 16
"""Events a record carries before its writer moves them to the chunk keys."""

CHUNK = 64
"""Events per chunk key (``h.<id>.<created>.<k>`` holds seqs ``k * CHUNK + 1`` on)."""

_RETRIES = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Hist:
    """An instance's history as its record keeps it."""

    seq: int = 0
    """The last event's seq."""
    first: int = 1
    """The first kept seq (``first - 1`` were dropped by the cap)."""
    tail: tuple[HistoryEvent, ...] = ()
    """The latest events, not yet moved to the chunk keys (everything before them was)."""
    snap: int | None = None
    """The seq whose snapshot is the record's own data and state."""
    snaps: tuple[int, ...] = ()
    """The seqs whose snapshots are in keys of their own, oldest first."""

    @property
    def moved(self) -> int:
        """The last seq in the chunk keys."""
        return self.tail[0].seq - 1 if self.tail else self.seq


NO_HIST = Hist()


def _row(e: HistoryEvent) -> list[Any]:
    at = (e.at - _EPOCH) // _MICRO
    return [e.seq, e.snapshot, at, e.kind, e.thread_id, e.name, e.attempt, e.error, e.detail]


def _event(row: list[Any]) -> HistoryEvent:
    seq, snap, at, kind, thread_id, name, attempt, error, detail = row
    at_time = _EPOCH + at * _MICRO
    return HistoryEvent(seq, at_time, kind, thread_id, name, attempt, error, detail, snap)


def hist_doc(h: Hist) -> dict[str, Any] | None:
    """A record's history for its JSON (None for none)."""
    if h == NO_HIST:
        return None
    return {
        "seq": h.seq,
        "first": h.first,
        "tail": [_row(e) for e in h.tail],
        "snap": h.snap,
        "snaps": list(h.snaps),
    }


def hist_from(doc: dict[str, Any] | None) -> Hist:
    """The `Hist` of a record's JSON (`hist_doc`)."""
    if doc is None:
        return NO_HIST
    tail = tuple(_event(row) for row in doc["tail"])
    return Hist(doc["seq"], doc["first"], tail, doc["snap"], tuple(doc["snaps"]))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _base(rec: Record) -> str:
    from stmtflow.stores._nats_keys import micros, token

    assert rec.created_at is not None
    return f"{token(rec.id)}.{micros(rec.created_at)}"


def chunk_key(rec: Record, k: int) -> str:
    """The key of chunk ``k`` of ``rec``'s history."""
    return f"h.{_base(rec)}.{k}"


def snapshot_key(rec: Record, seq: int) -> str:
    """The key of ``rec``'s snapshot filed under ``seq``."""
    return f"s.{_base(rec)}.{seq}"


def instance_keys(rec: Record) -> list[str]:
    """Key filters of every chunk and snapshot of ``rec`` (for `prune`)."""
    return [f"h.{_base(rec)}.*", f"s.{_base(rec)}.*"]


def _chunk_of(seq: int) -> int:
    return (seq - 1) // CHUNK


@dataclass(frozen=True, slots=True)
class Plan:
    """What a write does about history: the new `Hist`, the snapshot puts pipelined before its
    compare-and-set, the events to move first, and the keys to purge after."""

    hist: Hist
    puts: tuple[tuple[str, bytes], ...] = ()
    move: tuple[HistoryEvent, ...] = ()
    drops: tuple[str, ...] = ()
    trim: tuple[str, int] | None = None
    """A key filter and how many of its newest keys to keep: the snapshots' purge."""


def plan(before: Stored, rec: Record, write: HistoryWrite | None) -> Plan | None:
    """How writing ``rec`` over ``before`` with ``write`` changes the history (None: not)."""
    h, old = before.hist, before.record
    new = numbered(write, h.seq) if write is not None and write.events else []
    top = new[-1].seq if new else h.seq
    keep = top - write.snapshots if write is not None and new else None  # snapshots up to it go
    files = write is not None and bool(new) and write.snapshots > 0
    snap, snaps = h.snap, list(h.snaps)
    puts: list[tuple[str, bytes]] = []
    if snap is not None and (rec.data != old.data or rec.state != old.state or files):
        if keep is None or snap > keep:
            puts.append((snapshot_key(old, snap), _dumps({"data": old.data, "state": old.state})))
            snaps.append(snap)
        snap = None
    if write is None or not new:
        if not puts:
            return None
        return Plan(Hist(h.seq, h.first, h.tail, snap, tuple(snaps)), tuple(puts))
    assert keep is not None
    first = max(h.first, top - write.limit + 1)
    move: tuple[HistoryEvent, ...] = ()
    tail = tuple(e for e in h.tail if e.seq >= first)
    if len(tail) + len(new) > TAIL:
        move, tail = tail, ()
    tail += tuple(e for e in new if e.seq >= first)
    if files:
        snap = top
    snaps = [s for s in snaps if s > keep]
    trim = None
    if h.seq // TAIL != top // TAIL:  # every TAIL events: the keys of older snapshots go
        trim = (f"s.{_base(old)}.*", len(snaps))
    gone = range(_chunk_of(h.first), _chunk_of(first))  # chunks wholly before `first`
    drops = [chunk_key(old, k) for k in gone if k <= _chunk_of(max(h.moved, 1))]
    hist = Hist(top, first, tail, snap, tuple(snaps))
    return Plan(hist, tuple(puts), move, tuple(drops), trim)


# -- on the store's event loop -----------------------------------------------------------------


async def move(c: Client, rec: Record, events: Iterable[HistoryEvent]) -> None:
    """Merge ``events`` (committed ones) into ``rec``'s chunk keys, by compare-and-set."""
    by_chunk: dict[int, list[HistoryEvent]] = {}
    for e in events:
        by_chunk.setdefault(_chunk_of(e.seq), []).append(e)
    await asyncio.gather(*(_merge(c, chunk_key(rec, k), rows) for k, rows in by_chunk.items()))


async def _merge(c: Client, key: str, events: list[HistoryEvent]) -> None:
    kv = await c.ready()
    for _ in range(_RETRIES):
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            entry = None
        rows: dict[int, list[Any]] = {}
        if entry is not None and entry.value:
            rows = {row[0]: row for row in json.loads(entry.value)}
        if all(e.seq in rows for e in events):
            return
        rows.update((e.seq, _row(e)) for e in events)
        value = _dumps([rows[seq] for seq in sorted(rows)])
        try:
            if entry is None:
                await kv.create(key, value)
            else:
                await kv.update(key, value, last=entry.revision)
            return
        except nats.js.errors.KeyWrongLastSequenceError:
            continue
    raise ConflictError(f"history chunk {key!r}: gave up after {_RETRIES} lost races")


async def read_history(c: Client, stored: Stored) -> builtins.list[HistoryEvent]:
    """The kept events of ``stored``'s instance, oldest first."""
    h, rec = stored.hist, stored.record
    if h.seq == 0:
        return []
    kv = await c.ready()
    found: dict[int, HistoryEvent] = {}
    if h.moved >= h.first:

        async def chunk(k: int) -> list[Any]:
            try:
                entry = await kv.get(chunk_key(rec, k))
            except nats.js.errors.KeyNotFoundError:
                return []
            rows: list[Any] = json.loads(entry.value or b"[]")
            return rows

        ks = range(_chunk_of(h.first), _chunk_of(h.moved) + 1)
        for rows in await asyncio.gather(*(chunk(k) for k in ks)):
            found.update((row[0], _event(row)) for row in rows)
    found.update((e.seq, e) for e in h.tail)
    return [found[seq] for seq in sorted(found) if h.first <= seq <= h.seq]


async def read_snapshot(c: Client, stored: Stored, seq: int) -> Snapshot | None:
    """The snapshot filed under ``seq``, if still kept."""
    h, rec = stored.hist, stored.record
    if h.snap == seq:
        return Snapshot(seq, rec.data, rec.state)
    if seq not in h.snaps:
        return None
    kv = await c.ready()
    try:
        entry = await kv.get(snapshot_key(rec, seq))
    except nats.js.errors.KeyNotFoundError:
        return None
    doc = json.loads(entry.value or b"{}")
    return Snapshot(seq, doc["data"], doc["state"])

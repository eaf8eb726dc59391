"""The NATS store's lock index: a queue record per key, settled after the instance's write.

JetStream KV has no transaction over two keys, so the SQL stores' one commit (the instance's
state, its lock rows, the grants) becomes steps that each are one compare-and-set, in the
intent design of `stmtflow.stores._nats_inbox`:

1. **The rows, with the checkpoint.** An instance's rows (`Held`: thread, lock name, key,
   limit, the version it arrived at and the armed ``pc`` of its wait) live in its own record
   (`Mail.locks`). A write that carries `Batch.locks` replaces them in the record's new value
   (`plan`, the same rules as `stmtflow.stores._locks.apply_locks`) and names the keys whose
   rows changed in its `Intent`: they commit with the state or not at all.
2. **Each key's queue, by compare-and-set.** Every key ``K`` has one KV entry ``l.<K>``: its
   rows of all instances in arrival order, each granted or waiting. Applying the intent
   (`settle`) replaces, in each named queue, the instance's rows by the ones its record holds
   (a row is known by instance, thread, lock name and arrival version, so applying twice
   changes nothing), then grants the waiters in order while fewer than ``limit`` hold
   (`stmtflow.stores._locks.grants`). Before each compare-and-set the applier reads the
   instance's record again and goes on only while the intent is still pending there: a later
   intent of the instance is written only once this one is cleared, and its queue write would
   change the revision this one names, so an applier that stalled can never put back rows a
   later write took away.
3. **Grants told, then marked.** The queue marks a row granted and *untold*; the applier then
   posts each untold row's `grant_message` (with the armed ``pc`` of its wait, and the row as
   the message's origin, so a copy is appended once) to its instance's record, and marks the
   rows told by another compare-and-set. A crash in between leaves the intent pending: whoever
   finishes it (the record is due) settles the same keys again, which grants nothing new and
   tells the untold rows. A copy told twice finds its wait moved on (another ``pc``) and is
   dropped, so it can never let a thread in that the queue did not grant now.

So there are never more than ``limit`` holders: only a queue write grants, each queue write
sees every row of its key, and a row leaves its queue only after its instance's state stopped
claiming it (it left the body, ended, failed, was cancelled: the write that says so carries
the release, also when a worker reclaimed the instance after its lease lapsed). Arrival order
is the order in which claims reach the queue, which for one key is the order of those writes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import nats.js.errors

from stmtflow.errors import ConflictError
from stmtflow.stores._batch import Message
from stmtflow.stores._locks import LockClaim, LockRow, grants, lock_event

if TYPE_CHECKING:
    from stmtflow.stores._nats_client import Client
    from stmtflow.stores._nats_keys import Stored

__all__ = ["Held", "held_doc", "held_from", "plan", "settle"]

_RETRIES = 100
"""Compare-and-set attempts on one queue (each lost only to another write of it)."""


@dataclass(frozen=True, slots=True)
class Held:
    """A lock row of one instance, kept in its record: what its key's queue holds for it."""

    thread_id: str
    name: str
    key: str
    limit: int
    since: int
    """The record version whose write brought it (tells a new arrival from an old one)."""
    pc: int
    """The armed pc of the thread's wait for it (its grant message says it)."""


def held_doc(rows: Sequence[Held]) -> list[list[Any]]:
    return [[r.thread_id, r.name, r.key, r.limit, r.since, r.pc] for r in rows]


def held_from(doc: list[list[Any]] | None) -> tuple[Held, ...]:
    return tuple(Held(*row) for row in doc or ())


def plan(
    rows: tuple[Held, ...], claims: Sequence[LockClaim] | None, version: int
) -> tuple[tuple[Held, ...], tuple[str, ...]]:
    """The instance's rows after a write at ``version`` carrying ``claims`` (None: unchanged),
    and the keys whose rows changed (sorted)."""
    if claims is None:
        return rows, ()
    wanted = {(c.thread_id, c.name): c for c in claims}
    stay = {mark for mark, c in wanted.items() if not c.again}
    kept = [r for r in rows if (r.thread_id, r.name) in stay]
    have = {(r.thread_id, r.name) for r in kept}
    new = [
        Held(c.thread_id, c.name, c.key, c.limit, version, c.pc)
        for mark, c in wanted.items()
        if mark not in have and c.key is not None
    ]
    gone = [r for r in rows if (r.thread_id, r.name) not in stay]
    keys = sorted({r.key for r in gone} | {r.key for r in new})
    return (*kept, *new), tuple(keys)


# -- one key's queue ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    thread_id: str
    name: str
    limit: int
    since: int
    pc: int
    seq: int
    granted: bool
    told: bool

    @property
    def mark(self) -> tuple[str, str, str, int]:
        return (self.id, self.thread_id, self.name, self.since)


def _queue_from(value: bytes | None) -> tuple[int, list[_Row]]:
    if not value:
        return 0, []
    doc = json.loads(value)
    return doc["seq"], [_Row(*row) for row in doc["rows"]]


def _queue_doc(seq: int, rows: list[_Row]) -> bytes:
    doc = {
        "seq": seq,
        "rows": [
            [r.id, r.thread_id, r.name, r.limit, r.since, r.pc, r.seq, r.granted, r.told]
            for r in rows
        ],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _replaced(seq: int, rows: list[_Row], id: str, mine: list[Held]) -> tuple[int, list[_Row]]:
    """``rows`` with instance ``id``'s rows replaced by ``mine`` (new ones queue last)."""
    wanted = {(id, h.thread_id, h.name, h.since): h for h in mine}
    out = [r for r in rows if r.id != id or r.mark in wanted]
    present = {r.mark for r in out}
    for mark, h in wanted.items():
        if mark not in present:
            seq += 1
            out.append(_Row(id, h.thread_id, h.name, h.limit, h.since, h.pc, seq, False, False))
    return seq, out


def _granted(key: str, rows: list[_Row]) -> list[_Row]:
    """``rows`` with the waiters `grants` serves now marked granted (and untold)."""
    as_rows = [LockRow(r.seq, key, r.id, r.thread_id, r.name, r.limit, r.granted) for r in rows]
    now = {row.seq for row in grants(as_rows)}
    return [replace(r, granted=True, told=False) if r.seq in now else r for r in rows]


def _message(key: str, row: _Row) -> Message:
    return Message(
        to=row.id,
        event=lock_event(row.name),
        thread_id=row.thread_id,
        pc=row.pc,
        input=json.dumps(key),
    )


class _Queue:
    """Reads and writes the KV entry of one key's queue (compare-and-set on its revision)."""

    def __init__(self, c: Client, key: str) -> None:
        from stmtflow.stores._nats_keys import token  # it imports the inbox, which imports us

        self.c, self.key, self.subject = c, key, f"l.{token(key)}"

    async def read(self) -> tuple[int, int, list[_Row]]:
        """Revision (0: absent), seq, rows."""
        kv = await self.c.ready()
        try:
            entry = await kv.get(self.subject)
        except nats.js.errors.KeyNotFoundError:
            return 0, *_queue_from(None)
        assert entry.revision is not None
        return entry.revision, *_queue_from(entry.value)

    async def write(self, revision: int, seq: int, rows: list[_Row]) -> bool:
        """False when another write came first."""
        kv = await self.c.ready()
        value = _queue_doc(seq, rows)
        try:
            if revision == 0:
                await kv.create(self.subject, value)
            else:
                await kv.update(self.subject, value, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        return True


async def _pending(c: Client, id: str, version: int) -> bool:
    """Whether instance ``id``'s record (read now) still holds its intent of ``version``."""
    stored = await c.read(id)
    intent = None if stored is None else stored.mail.intent
    return intent is not None and intent.version == version


async def _settle_key(c: Client, key: str, id: str, version: int, mine: list[Held]) -> bool:
    """Bring ``key``'s queue in line with instance ``id``'s rows, grant, tell the granted.
    False when the intent was finished by someone else meanwhile (nothing left to do)."""
    from stmtflow.stores._nats_inbox import deliver  # the inbox imports this module

    queue = _Queue(c, key)
    for _ in range(_RETRIES):
        revision, seq, rows = await queue.read()
        seq, changed = _replaced(seq, rows, id, mine)
        changed = _granted(key, changed)
        if changed != rows:
            if not await _pending(c, id, version):
                return False
            if not await queue.write(revision, seq, changed):
                continue
        untold = [r for r in changed if r.granted and not r.told]
        break
    else:
        raise ConflictError(f"lock key {key!r}: gave up after {_RETRIES} lost races")
    if not untold:
        return True
    await asyncio.gather(*(deliver(c, r.id, [_message(key, r)], (key, -r.seq)) for r in untold))
    told = {r.mark for r in untold}
    for _ in range(_RETRIES):
        revision, seq, rows = await queue.read()
        marked = [replace(r, told=True) if r.mark in told and r.granted else r for r in rows]
        if marked == rows or await queue.write(revision, seq, marked):
            return True
    raise ConflictError(f"lock key {key!r}: gave up marking its grants told")


async def settle(c: Client, stored: Stored) -> None:
    """Apply the lock part of ``stored``'s intent: each key it names, in order."""
    intent = stored.mail.intent
    if intent is None or not intent.locks:
        return
    id, rows = stored.record.id, stored.mail.locks
    for key in intent.locks:
        mine = [r for r in rows if r.key == key]
        if not await _settle_key(c, key, id, intent.version, mine):
            return

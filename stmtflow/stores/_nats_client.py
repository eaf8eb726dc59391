"""The asyncio side of the NATS store: the connection, record reads and writes, the indexes.

Everything here runs on the store's one event-loop thread (`stmtflow.stores._nats_loop`).
The record in the KV bucket is the source of truth; the index entries are hints, written
before the record they announce and checked against it when read:

- A writer puts the new index entries first (the due entry, then the markers of its minute and
  hour; the status entry; an input entry per assignee and workflow of its pending-input rows,
  which travel inside the record), then writes the record by compare-and-set on its KV
  revision, then drops the entries the old version relied on. A crash between these steps
  leaves extra entries, never a record without its entries.
- A reader of an entry ``(…, id, v)`` reads the record: the entry is *live* when the record
  names it, *stale* when the record's version is ``v`` or later and names another (dropped
  then), and *pending* when the record is older than ``v`` (a write in flight, or one whose
  writer died: after `GRACE` such an entry is repaired, see `Client.repair`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as Connection
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from stmtflow.errors import ConflictError, StmtflowError
from stmtflow.stores._history import ENDED
from stmtflow.stores._inputs import PendingInput
from stmtflow.stores._nats_connect import Settings, connect, why
from stmtflow.stores._nats_history import NO_HIST, Hist, Plan
from stmtflow.stores._nats_inbox import NO_MAIL, Mail
from stmtflow.stores._nats_keys import (
    RESUMING_SLOT,
    SCHEMA_VERSION,
    Due,
    Names,
    Stored,
    decode,
    due_place,
    encode,
    micros,
    pairs,
    token,
)
from stmtflow.stores.base import Record, with_changes

__all__ = ["ENDED", "GRACE", "Client", "Settings"]

log = logging.getLogger("stmtflow.stores.nats")

GRACE = timedelta(minutes=5)
"""How long a pending index entry (its record not yet at its version) is left alone: far longer
than a write takes, so only the entries of a writer that died are ever repaired."""

CACHE_SIZE = 4096
"""Records remembered with their KV revision (a write whose copy is current skips a read)."""

WrongRevision = nats.js.errors.KeyWrongLastSequenceError


class Client:
    """One connection to NATS and the bucket, streams and record cache of one store."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.url = url
        self.names = Names(settings.bucket)
        self.nc: Connection | None = None
        self.js: JetStreamContext | None = None
        self.kv: KeyValue | None = None
        self.cache: OrderedDict[str, Stored] = OrderedDict()
        self.background: set[asyncio.Task[None]] = set()
        self._connecting: asyncio.Lock | None = None
        self.layout = 0
        """The layout version the store had when this client connected."""

    # -- connection -------------------------------------------------------------------------

    async def ready(self) -> KeyValue:
        """The bucket, connecting (and creating bucket and streams if missing) on first use."""
        if self.kv is not None:
            return self.kv
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.kv is None:
                kv = await self._connect()
                if self.layout < SCHEMA_VERSION:
                    from stmtflow.stores._nats_prune import upgrade

                    await upgrade(self, kv)
        assert self.kv is not None
        return self.kv

    async def _connect(self) -> KeyValue:
        def reconnecting(why: str) -> None:
            if self.nc is not None:  # connected before: the client is reconnecting
                log.warning("NATS store %s: %s", self.url, why)

        self.nc, self.js, kv, self.layout = await connect(
            self.settings, self.names, self.url, reconnecting
        )
        self.kv = kv
        return kv

    async def close(self) -> None:
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        nc, self.nc, self.js, self.kv = self.nc, None, None, None
        self.cache.clear()
        if nc is not None and not nc.is_closed:
            await nc.close()

    async def drop(self) -> None:
        """Delete the bucket and the index streams (connecting without creating them)."""
        if self.js is None:
            self.nc = await nats.connect(servers=[self.settings.server], name="stmtflow")
            self.js = self.nc.jetstream(timeout=self.settings.timeout)
        for stream in [f"KV_{self.settings.bucket}", *self.names.streams()]:
            try:
                await self.js.delete_stream(stream)
            except nats.js.errors.NotFoundError:
                continue
        self.kv = None
        self.cache.clear()

    def forget(self) -> None:
        """Drop the connection without closing it (it belonged to a parent process)."""
        self.nc, self.js, self.kv = None, None, None
        self.cache.clear()
        self.background = set()
        self._connecting = None

    # -- records ----------------------------------------------------------------------------

    async def read(self, id: str) -> Stored | None:
        """The stored record (fresh from the server), or None."""
        kv = await self.ready()
        try:
            entry = await kv.get(f"i.{token(id)}")
        except nats.js.errors.KeyNotFoundError:
            self.cache.pop(id, None)
            return None
        assert entry.value is not None and entry.revision is not None
        return self._remember(decode(entry.value, entry.revision))

    async def known(self, id: str) -> Stored | None:
        """The record as this store last read or wrote it (maybe stale), else read."""
        cached = self.cache.get(id)
        return cached if cached is not None else await self.read(id)

    def _remember(self, stored: Stored) -> Stored:
        self.cache[stored.record.id] = stored
        self.cache.move_to_end(stored.record.id)
        while len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)
        return stored

    def _value(self, new: Stored) -> bytes:
        value = encode(new)
        assert self.nc is not None
        if len(value) > self.nc.max_payload:
            raise StmtflowError(
                f"workflow instance {new.record.id!r}: its record is {len(value)} bytes, more "
                f"than the NATS server's max_payload ({self.nc.max_payload} bytes); raise "
                "max_payload in the server's configuration"
            )
        return value

    async def create(self, rec: Record, inputs: tuple[PendingInput, ...]) -> Record:
        """Store a new record (its version 1) with its pending-input rows; `ConflictError` if
        the id exists."""
        kv = await self.ready()
        new = self._refs(None, rec, inputs, NO_MAIL, None)
        value = self._value(new)
        await self._announce(None, new)
        try:
            revision = await kv.create(f"i.{token(rec.id)}", value)
        except WrongRevision:
            raise ConflictError(f"a workflow instance with id {rec.id!r} already exists") from None
        self._remember(replace(new, revision=revision))
        return rec

    async def write(
        self,
        before: Stored,
        rec: Record,
        inputs: tuple[PendingInput, ...] | None = None,
        mail: Mail | None = None,
        plan: Plan | None = None,
    ) -> Stored | None:
        """Replace ``before`` with ``rec`` if the record is still at ``before``'s revision.

        ``inputs`` replaces the pending-input rows (None keeps them), ``mail`` the inbox and
        intent (None keeps them: `stmtflow.stores._nats_inbox`), ``plan`` the history (None
        keeps it: `stmtflow.stores._nats_history`; its snapshot puts are pipelined before the
        compare-and-set). None when another write came first (read again and decide again).
        Index entries the new version needs are put first; the ones only the old version
        needed are dropped after, in the background.
        """
        kv = await self.ready()
        assert self.js is not None
        rows = before.inputs if inputs is None else inputs
        hist = before.hist if plan is None else plan.hist
        new = self._refs(before, rec, rows, before.mail if mail is None else mail, hist)
        value = self._value(new)
        await self._announce(before, new)
        bucket = self.settings.bucket
        puts = [] if plan is None else plan.puts
        acks = [await self.js.publish_async(f"$KV.{bucket}.{key}", v) for key, v in puts]
        try:
            revision = await kv.update(f"i.{token(rec.id)}", value, last=before.revision)
        except WrongRevision:
            self.cache.pop(rec.id, None)
            return None
        finally:
            if acks:  # same stream and connection: stored before the record's write
                await asyncio.wait_for(asyncio.gather(*acks), self.settings.timeout)
        stored = self._remember(replace(new, revision=revision))
        gone = before.subjects(self.names) - stored.subjects(self.names)
        if plan is not None and plan.drops:
            gone |= {f"$KV.{bucket}.{key}" for key in plan.drops}
        self.later(self.purge(gone))
        if plan is not None and plan.trim is not None:
            keys, keep = plan.trim
            subject = f"$KV.{bucket}.{keys}"
            self.later(self._trim(f"KV_{bucket}", subject, keep))
        return stored

    async def _trim(self, stream: str, subject: str, keep: int) -> None:
        assert self.js is not None
        await self.js.purge_stream(stream, subject=subject, keep=keep or None)

    @staticmethod
    def _refs(
        before: Stored | None,
        rec: Record,
        inputs: tuple[PendingInput, ...],
        mail: Mail,
        hist: Hist | None,
    ) -> Stored:
        """``rec`` with ``mail`` and the index entries it relies on (the old ones where they
        still fit), before it has a revision."""
        place = due_place(rec.status, rec.wake_at, rec.created_at, mail.urgent)
        old_due = None if before is None else before.due
        due: Due | None
        if place is None:
            due = None
        elif old_due is not None and old_due[:2] == place:
            due = old_due
        else:
            due = (*place, rec.version)
        same_status = before is not None and before.record.status == rec.status
        st = before.st if before is not None and same_status else rec.version
        same_pairs = before is not None and pairs(before.inputs) == pairs(inputs)
        inp = before.inp if before is not None and same_pairs else rec.version
        end = None
        if rec.status in ENDED:
            if before is not None and before.end is not None and before.record.status in ENDED:
                end = before.end
            else:
                assert rec.updated_at is not None
                end = (micros(rec.updated_at) // 3_600_000_000, rec.version)
        if mail.box:
            rec = with_changes(rec, inbox=True)
        elif rec.inbox:
            rec = with_changes(rec, inbox=False)
        if hist is None:
            hist = NO_HIST if before is None else before.hist
        return Stored(rec, 0, due, st, inputs, inp, mail, hist, end)

    async def _announce(self, before: Stored | None, new: Stored) -> None:
        """Put the index entries ``new`` needs and ``before`` did not have."""
        assert self.js is not None
        js, names, rec, due = self.js, self.names, new.record, new.due
        new_due = due is not None and (before is None or before.due != due)
        puts: list[Awaitable[object]] = []
        if before is None or before.st != new.st:
            puts.append(js.publish(names.status(rec, new.st), b""))
        if before is None and rec.parent_id is not None:
            puts.append(js.publish(names.child(rec), b""))
        had = set() if before is None else before.input_subjects(names)
        puts += [js.publish(s, b"") for s in sorted(new.input_subjects(names) - had)]
        if new.end is not None and (before is None or before.end != new.end):
            # The hour's entry, then its marker (one stream: in the order sent).
            puts.append(await js.publish_async(names.ended(rec, new.end), b""))
            puts.append(await js.publish_async(names.ended_hour(new.end[0]), b""))
        minute = None if due is None or due[0] == RESUMING_SLOT else int(due[0])
        if new_due and due is not None:
            # A minute's entry, then its marker: one stream stores one connection's messages
            # in the order sent, so the marker is never there before the entry (a claimer
            # that finds a minute empty drops its marker only if nobody put it again since it
            # looked: see `drop_marker`).
            puts.append(await js.publish_async(names.due(rec.id, due), b""))
            if minute is not None:
                puts.append(await js.publish_async(names.marker(minute), b""))
        await asyncio.wait_for(asyncio.gather(*puts), self.settings.timeout)
        if new_due and minute is not None:
            await js.publish(names.hour(minute // 60), b"")  # after the minute's marker

    # -- index maintenance ------------------------------------------------------------------

    def later(self, work: Awaitable[None]) -> None:
        """Run index cleanup in the background; a failure is logged (the next reader repairs)."""

        async def run() -> None:
            try:
                await work
            except (nats.errors.Error, OSError) as exc:
                log.warning("NATS store %s: index cleanup failed: %s", self.url, why(exc))

        task = asyncio.get_running_loop().create_task(run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def purge(self, subjects: Iterable[str | None]) -> None:
        """Remove these index entries (no marker is left behind)."""
        assert self.js is not None
        await asyncio.gather(
            *(
                self.js.purge_stream(self.names.stream_of(s), subject=s)
                for s in subjects
                if s is not None
            )
        )

    async def subjects(self, stream: str, pattern: str) -> list[str]:
        """Every subject of ``stream`` matching ``pattern`` that holds a message."""
        assert self.nc is not None
        found: dict[str, int] = {}
        while True:
            request = json.dumps({"subjects_filter": pattern, "offset": len(found)}).encode()
            reply = await self.nc.request(
                f"$JS.API.STREAM.INFO.{stream}", request, timeout=self.settings.timeout
            )
            answer = json.loads(reply.data)
            if "error" in answer:
                raise StmtflowError(f"NATS at {self.url}: stream {stream}: {answer['error']}")
            page = answer.get("state", {}).get("subjects") or {}
            found.update(page)
            if not page or len(found) >= int(answer.get("total", 0)):
                return list(found)

    async def age(self, stream: str, subject: str) -> timedelta | None:
        """How long ago the message on ``subject`` was stored (None: it is gone)."""
        assert self.js is not None
        try:
            msg = await self.js.get_last_msg(stream, subject, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        return None if msg.time is None else datetime.now(UTC) - msg.time

    async def drop_marker(self, subject: str, entries: Awaitable[list[str]]) -> None:
        """Remove the marker ``subject`` if ``entries`` (listed after reading the marker) is
        empty."""
        assert self.js is not None
        stream = self.names.stream_of(subject)
        try:
            msg = await self.js.get_last_msg(stream, subject, direct=True)
        except nats.js.errors.NotFoundError:
            return
        if not await entries and msg.seq is not None:
            # Refused ("no message found") when the marker was put again since we looked: a
            # new entry came, and the new marker stays.
            with contextlib.suppress(nats.js.errors.APIError):
                await self.js.delete_msg(stream, msg.seq)

    async def repair(self, stored: Stored | None, subject: str) -> None:
        """Drop an instance's pending entry whose writer must have died (`drop_abandoned`)."""

        async def touch() -> bool:
            if stored is None:
                return True
            assert self.kv is not None
            try:
                await self.kv.update(
                    f"i.{token(stored.record.id)}", encode(stored), last=stored.revision
                )
            except WrongRevision:
                return False  # it moved on: the next reader decides again
            return True

        await self.drop_abandoned(subject, touch)

    async def drop_abandoned(self, subject: str, touch: Callable[[], Awaitable[bool]]) -> None:
        """Drop a pending entry whose writer must have died (older than `GRACE`).

        ``touch`` first rewrites the entry's record unchanged (a new revision), so a writer
        that was only slow fails its compare-and-set, reads again and puts its entries again;
        it answers False when the record moved on (the entry stays: the next reader decides).
        """
        age = await self.age(self.names.stream_of(subject), subject)
        if age is not None and age >= GRACE and await touch():
            await self.purge([subject])


def verdict(stored: Stored | None, subject: str, version: int, names: Names) -> str:
    """``live``, ``stale`` or ``pending``: what an index entry is worth (module docstring)."""
    if stored is None:
        return "pending"
    if subject in stored.subjects(names):
        return "live"
    return "stale" if stored.record.version >= version else "pending"


async def gather_reads(client: Client, ids: Iterable[str]) -> dict[str, Stored | None]:
    """Fresh reads of ``ids``, concurrently."""
    wanted = list(dict.fromkeys(ids))
    found: list[Any] = await asyncio.gather(*(client.read(id) for id in wanted))
    return dict(zip(wanted, found, strict=True))

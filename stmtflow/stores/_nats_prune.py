"""The NATS store's `HistoryStore` methods: history and snapshot reads, and prune by the ended
index.

An instance that ends is filed in the ended index (``stmtflow.B.end.<hour>.<workflow>.<id>.<v>``,
the hour of the write that ended it, and a marker ``stmtflow.B.endh.<hour>``; see
`stmtflow.stores._nats_keys`), put before the record's write like every index entry and checked
against the record when read. A prune reads the hour markers (one request), then the entries of
the hours before its cut-off only (one request each) and their records, never the records of
instances that are running or ended since: its cost follows what it deletes. A later write of
an ended instance (a teardown retried) keeps its entry in the hour it ended, so an instance is
never filed later than it was last written, and each one found is judged by its record's own
``updated_at``.

Each instance is deleted by a compare-and-set delete of its record (a write since the prune
read it keeps it), whose delete marker is then purged (only if nothing was written after it),
then its history chunks and snapshots and its index entries (its own children's entries stay,
as the SQL stores keep naming the parent; its outbox rows stay until delivered).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

import nats.js.errors
from nats.js.kv import KeyValue

from stmtflow.stores._history import HistoryEvent, Snapshot, prunable
from stmtflow.stores._nats_client import ENDED, Client, gather_reads, verdict
from stmtflow.stores._nats_history import instance_keys, read_history, read_snapshot
from stmtflow.stores._nats_keys import SCHEMA_VERSION, Stored, micros, token, untoken
from stmtflow.stores._nats_scan import parse_input
from stmtflow.stores.base import aware

__all__ = ["NatsHistory", "prune", "upgrade"]

T = TypeVar("T")

_HOUR = 3_600_000_000
"""An hour in microseconds: the width of a slot of the ended index."""

_READ_BATCH = 256


def _prunable(stored: Stored, before: datetime, now: datetime) -> bool:
    """An instance `prunable` whose write left nothing to apply after it (a pending intent
    may still release lock slots or post messages)."""
    return prunable(stored.record, before, now) and stored.mail.intent is None


async def _delete(c: Client, stored: Stored) -> bool:
    """Delete one instance with its keys and index entries; False if it was written since."""
    assert c.js is not None
    rec, bucket, names = stored.record, c.settings.bucket, c.names
    subject = f"$KV.{bucket}.i.{token(rec.id)}"
    headers = {"KV-Operation": "DEL", "Nats-Expected-Last-Subject-Sequence": str(stored.revision)}
    try:
        ack = await c.js.publish(subject, b"", headers=headers)
    except nats.js.errors.APIError as exc:
        if exc.err_code in (10071, 10164):  # wrong last sequence: written since it was read
            return False
        raise
    c.cache.pop(rec.id, None)
    # Up to the marker only: a record created again under this id since is kept.
    await c.js.purge_stream(f"KV_{bucket}", seq=ack.seq + 1, subject=subject)
    keys = [f"$KV.{bucket}.{key}" for key in instance_keys(rec)]
    family = [names.child(rec)] if rec.parent_id is not None else []
    await c.purge([*keys, *stored.subjects(names), *family])
    return True


async def prune(
    c: Client, before: datetime, now: datetime, workflow: str | None, limit: int
) -> builtins.list[str]:
    """Delete up to ``limit`` prunable instances of the hours before ``before`` (`prune`)."""
    await c.ready()
    names = c.names
    cut = micros(before) // _HOUR
    markers = await c.subjects(names.ended_stream, names.ended_hour("*"))
    hours = sorted(h for h in (int(m.rsplit(".", 1)[1]) for m in markers) if h <= cut)
    deleted: builtins.list[str] = []
    for hour in hours:
        subjects = sorted(await c.subjects(names.ended_stream, names.ended_filter(hour, workflow)))
        if not subjects and workflow is None:
            left = c.subjects(names.ended_stream, names.ended_filter(hour, None))
            await c.drop_marker(names.ended_hour(hour), left)
        for start in range(0, len(subjects), _READ_BATCH):
            batch = [(s, *parse_input(s)) for s in subjects[start : start + _READ_BATCH]]
            stored = await gather_reads(c, (id for _, id, _ in batch))
            doomed: dict[str, Stored] = {}
            stale: list[str] = []
            for subject, id, version in batch:
                found = stored[id]
                judged = verdict(found, subject, version, names)
                if judged == "stale":
                    stale.append(subject)
                elif judged == "pending":
                    c.later(c.repair(found, subject))
                elif found is not None and _prunable(found, before, now):
                    doomed[id] = found
            if stale:
                await c.purge(stale)
            chosen = list(doomed.values())[: limit - len(deleted)]
            done = await asyncio.gather(*(_delete(c, s) for s in chosen))
            deleted += [s.record.id for s, ok in zip(chosen, done, strict=True) if ok]
            if len(deleted) >= limit:
                return deleted
    return deleted


async def upgrade(c: Client, kv: KeyValue) -> None:
    """Bring a store of layout 1 to 2: file each ended instance in the ended index (its record
    rewritten unchanged but for its ``end``: the hour of its last write), then record layout 2.
    Done once, by the first client of the new release (two at once do the same writes)."""
    names = c.names
    for status in sorted(ENDED):
        subjects = await c.subjects(names.status_stream, names.status_filter(status, None))
        ids = [untoken(s.split(".")[-2]) for s in subjects]
        for start in range(0, len(ids), _READ_BATCH):
            stored = await gather_reads(c, ids[start : start + _READ_BATCH])
            await asyncio.gather(
                *(
                    c.write(s, s.record)
                    for s in stored.values()
                    if s is not None and s.end is None and s.record.status in ENDED
                )
            )
    entry = await kv.get("meta.schema")
    if int(entry.value or b"0") < SCHEMA_VERSION:
        with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
            await kv.update("meta.schema", str(SCHEMA_VERSION).encode(), last=entry.revision)


class NatsHistory:
    """The `HistoryStore` methods of `stmtflow.stores.nats.NatsStore`."""

    def _run(self, what: str, make: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        raise NotImplementedError  # the store's own: runs ``make`` on its event loop

    def history(self, id: str) -> tuple[builtins.list[HistoryEvent], int]:
        async def history(c: Client) -> tuple[builtins.list[HistoryEvent], int]:
            stored = await c.read(id)
            if stored is None:
                return [], 0
            events = await read_history(c, stored)
            return events, (events[0].seq - 1 if events else stored.hist.first - 1)

        return self._run(f"read the history of {id!r}", history)

    def snapshot(self, id: str, seq: int) -> Snapshot | None:
        async def snapshot(c: Client) -> Snapshot | None:
            stored = await c.read(id)
            return None if stored is None else await read_snapshot(c, stored, seq)

        return self._run(f"read snapshot {seq} of {id!r}", snapshot)

    def prune(
        self,
        ended_before: datetime,
        *,
        workflow: str | None = None,
        limit: int = 100,
        now: datetime,
    ) -> builtins.list[str]:
        before, now = aware(ended_before, "ended_before"), aware(now, "now")
        if limit <= 0:
            return []
        return self._run("prune", lambda c: prune(c, before, now, workflow, limit))

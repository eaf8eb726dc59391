"""The NATS store's schedules: KV records written compare-and-set, found due through a clock.

Under the store's bucket ``B``:

- KV ``s.<name>`` (the name as a `token`): one schedule, JSON ``{name, spec, due, version}``
  (``due`` in microseconds since 1970), written compare-and-set on its KV revision.
- KV ``sclock``: ``{passed, swept}``, two minute numbers. Every minute before ``passed`` has been
  left behind by a tick; the entries of those before ``swept`` have all been moved to the near
  slot.
- Stream ``STMTFLOW_B_SCHEDULES``, ``stmtflow.B.sd.<slot>.<due>.<name>.<v>``: "schedule
  ``name`` at version ``v`` is due at ``due``", a hint put before the record it announces.
  ``<slot>`` is the minute of ``due``, or ``n``, the near slot, for a time in a minute the clock
  has reached or is about to.

A tick reads the clock, the near slot's subjects and the current minute's (three requests,
however many schedules are stored), then the records of the entries whose time has come. When
the current minute is past ``passed``, the tick moves ``passed`` on first, then sweeps the
minutes it left behind: their entries are put again in the near slot and purged from the
minute (one request per minute left behind: a worker back from a day's downtime makes 1,440,
once). A writer reads the clock before it puts its entry: a time in a
minute before ``passed + 2`` goes to the near slot; a later one to its minute, and after the
record is written the writer reads the clock again and, if a tick has left that minute behind
meanwhile, puts the entry in the near slot itself. So every record that has a due time is named
by an entry a tick reads: in its minute while the clock has not passed it, in the near slot
after.

An entry is judged against its record: *live* when the record has its version and due time,
*stale* when the record is past its version (or at it with another time; purged), *pending*
when the record is missing or before its version (a write in flight; repaired after `GRACE`,
as the records' index entries are, `stmtflow.stores._nats_client.Client.repair`).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import nats.js.errors

from stmtflow.stores._nats_client import Client, WrongRevision
from stmtflow.stores._nats_keys import micros, slot_of, token, untoken
from stmtflow.stores._schedules import ScheduleRow, missing_schedule, schedule_conflict
from stmtflow.stores.base import aware, utcnow

__all__ = ["SWEEP", "NatsSchedules"]

T = TypeVar("T")

SWEEP = 64
"""Minutes a sweep lists at once (a worker back from downtime sweeps every minute it missed)."""

_NEAR = 2
"""A due time in a minute before ``passed + _NEAR`` is filed in the near slot at once."""

_CLOCK = "sclock"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _key(name: str) -> str:
    return f"s.{token(name)}"


@dataclass(frozen=True, slots=True)
class _Stored:
    row: ScheduleRow
    revision: int

    @property
    def due(self) -> int | None:
        return None if self.row.due_at is None else micros(self.row.due_at)


def _encode(row: ScheduleRow) -> bytes:
    due = None if row.due_at is None else micros(row.due_at)
    doc = {"name": row.name, "spec": row.spec, "due": due, "version": row.version}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _decode(value: bytes, revision: int) -> _Stored:
    doc = json.loads(value)
    due = doc["due"]
    at = None if due is None else _from_micros(due)
    return _Stored(ScheduleRow(doc["name"], doc["spec"], at, doc["version"]), revision)


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True, slots=True)
class _Clock:
    passed: int
    swept: int
    revision: int


@dataclass(frozen=True, slots=True)
class _Entry:
    subject: str
    due: int
    name: str
    version: int


class _Schedules:
    """The asyncio side: one store's client, its schedule records, clock and entries."""

    def __init__(self, c: Client) -> None:
        self.c = c
        self.prefix = f"{c.names.prefix}.sd"
        self.stream = c.names.schedules_stream

    def subject(self, slot: str, due: int, name: str, version: int) -> str:
        return f"{self.prefix}.{slot}.{due}.{token(name)}.{version}"

    def entries_of(self, stored: _Stored) -> list[str]:
        """Both places an entry of ``stored`` may be (its minute, the near slot)."""
        due, row = stored.due, stored.row
        if due is None:
            return []
        minute = str(slot_of(aware(row.due_at, "due_at")))  # type: ignore[arg-type]
        return [self.subject(s, due, row.name, row.version) for s in (minute, "n")]

    async def read(self, name: str) -> _Stored | None:
        kv = await self.c.ready()
        try:
            entry = await kv.get(_key(name))
        except nats.js.errors.KeyNotFoundError:
            return None
        assert entry.value is not None and entry.revision is not None
        return _decode(entry.value, entry.revision)

    async def clock(self, create: bool) -> _Clock | None:
        """The clock; made at the current minute when missing and ``create``."""
        kv = await self.c.ready()
        while True:
            try:
                entry = await kv.get(_CLOCK)
            except nats.js.errors.KeyNotFoundError:
                if not create:
                    return None
                now = slot_of(utcnow())
                doc = json.dumps({"passed": now, "swept": now}).encode()
                with contextlib.suppress(WrongRevision):  # or another writer made it first
                    await kv.create(_CLOCK, doc)
                continue
            assert entry.value is not None and entry.revision is not None
            doc = json.loads(entry.value)
            return _Clock(doc["passed"], doc["swept"], entry.revision)

    async def publish(self, subjects: builtins.list[str]) -> None:
        js = self.c.js
        assert js is not None
        await asyncio.gather(*(js.publish(s, b"") for s in subjects))

    # -- writing -----------------------------------------------------------------------------

    async def put(self, row: ScheduleRow, expected: int) -> ScheduleRow:
        kv = await self.c.ready()
        timed = row.due_at is not None
        old, clock = await asyncio.gather(self.read(row.name), self.clock(create=timed))
        found = None if old is None else old.row.version
        if (found or 0) != expected:
            raise schedule_conflict(row.name, expected, found)
        new = _Stored(ScheduleRow(row.name, row.spec, row.due_at, expected + 1), 0)
        minute_subject = None
        if new.due is not None:
            assert row.due_at is not None and clock is not None
            minute = slot_of(row.due_at)
            near = minute < clock.passed + _NEAR
            slot = "n" if near else str(minute)
            subject = self.subject(slot, new.due, row.name, new.row.version)
            minute_subject = None if near else subject
            await self.publish([subject])
        try:
            if old is None:
                await kv.create(_key(row.name), _encode(new.row))
            else:
                await kv.update(_key(row.name), _encode(new.row), last=old.revision)
        except WrongRevision:
            # Lost to another writer: our entry is left to be judged (it may be the same
            # subject as the winner's, so purging it could take the winner's away).
            again = await self.read(row.name)
            raise schedule_conflict(
                row.name, expected, None if again is None else again.row.version
            ) from None
        if old is not None:
            self.c.later(self.c.purge(self.entries_of(old)))
        if minute_subject is not None:
            await self.recheck(new, minute_subject)
        return new.row

    async def recheck(self, new: _Stored, minute_subject: str) -> None:
        """After writing a record filed in its minute: if a tick left that minute behind while
        we wrote, the tick's sweep may have missed the entry, so file it in the near slot."""
        assert new.row.due_at is not None and new.due is not None
        clock = await self.clock(create=True)
        assert clock is not None
        if slot_of(new.row.due_at) < clock.passed:
            await self.publish([self.subject("n", new.due, new.row.name, new.row.version)])
            await self.c.purge([minute_subject])

    async def delete(self, name: str) -> bool:
        kv = await self.c.ready()
        while True:
            old = await self.read(name)
            if old is None:
                return False
            try:
                await kv.delete(_key(name), last=old.revision)
            except WrongRevision:
                continue
            await self.c.purge(self.entries_of(old))
            return True

    async def every(self) -> builtins.list[ScheduleRow]:
        kv = await self.c.ready()
        bucket = self.c.settings.bucket
        subjects = await self.c.subjects(f"KV_{bucket}", f"$KV.{bucket}.s.*")
        keys = [s.split(".", 2)[2] for s in subjects]
        entries = await asyncio.gather(*(_get(kv, key) for key in keys))
        rows = [
            _decode(e.value, e.revision).row
            for e in entries
            if e is not None and e.value and e.revision is not None
        ]
        return sorted(rows, key=lambda r: r.name)

    # -- finding due schedules ---------------------------------------------------------------

    async def due(self, now: datetime, limit: int) -> builtins.list[ScheduleRow]:
        clock = await self.clock(create=False)
        if clock is None:
            return []  # no schedule was ever written here
        current = slot_of(now)
        if current > clock.passed:
            clock = await self.advance(clock, current)
        if clock.swept < clock.passed:
            await self.sweep(clock)
        slots = ["n", *(str(m) for m in range(clock.passed, current + 1))]
        until = micros(now)
        found = await asyncio.gather(
            *(self.c.subjects(self.stream, f"{self.prefix}.{s}.*.*.*") for s in slots)
        )
        entries = sorted(
            (e for subjects in found for e in map(_parse, subjects) if e.due <= until),
            key=lambda e: (e.due, e.name),
        )
        return await self.judge(entries, limit)

    async def judge(self, entries: builtins.list[_Entry], limit: int) -> builtins.list[ScheduleRow]:
        """The live rows of ``entries`` (in their order, at most ``limit``); stale entries are
        purged, pending ones repaired once older than `GRACE`."""
        rows: dict[str, ScheduleRow] = {}
        stale: list[str] = []
        read = 0
        while read < len(entries) and len(rows) < limit:
            chunk = entries[read : read + max(2 * (limit - len(rows)), 8)]
            read += len(chunk)
            names = list(dict.fromkeys(e.name for e in chunk))
            got = dict(zip(names, await asyncio.gather(*map(self.read, names)), strict=True))
            for e in chunk:
                current = got[e.name]
                if current is None or current.row.version < e.version:
                    self.c.later(self.repair(current, e.subject))
                elif current.row.version == e.version and current.due == e.due:
                    if len(rows) < limit:
                        rows.setdefault(e.name, current.row)
                else:
                    stale.append(e.subject)
        if stale:
            self.c.later(self.c.purge(stale))
        return list(rows.values())

    async def repair(self, current: _Stored | None, subject: str) -> None:
        """Drop a pending entry whose writer must have died (older than `GRACE`); the record is
        first rewritten unchanged, so a writer that was only slow fails its compare-and-set."""

        async def touch() -> bool:
            if current is None:
                return True
            kv = await self.c.ready()
            try:
                await kv.update(_key(current.row.name), _encode(current.row), last=current.revision)
            except WrongRevision:
                return False
            return True

        await self.c.drop_abandoned(subject, touch)

    async def advance(self, clock: _Clock, current: int) -> _Clock:
        """Move ``passed`` on to ``current`` (compare-and-set; another tick may come first)."""
        kv = await self.c.ready()
        while clock.passed < current:
            doc = json.dumps({"passed": current, "swept": clock.swept}).encode()
            try:
                revision = await kv.update(_CLOCK, doc, last=clock.revision)
            except WrongRevision:
                again = await self.clock(create=False)
                assert again is not None
                clock = again
                continue
            return _Clock(current, clock.swept, revision)
        return clock

    async def sweep(self, clock: _Clock) -> None:
        """Move the entries of the minutes left behind to the near slot, `SWEEP` minutes at a
        time, recording each batch swept (a tick that dies meanwhile leaves the rest to the
        next: moving an entry twice is harmless)."""
        while clock.swept < clock.passed:
            end = min(clock.passed, clock.swept + SWEEP)
            found = await asyncio.gather(
                *(
                    self.c.subjects(self.stream, f"{self.prefix}.{m}.*.*.*")
                    for m in range(clock.swept, end)
                )
            )
            subjects = [s for page in found for s in page]
            moved = [self.subject("n", e.due, e.name, e.version) for e in map(_parse, subjects)]
            if moved:
                await self.publish(moved)
                await self.c.purge(subjects)
            clock = await self.swept(clock, end)

    async def swept(self, clock: _Clock, end: int) -> _Clock:
        """Record the minutes before ``end`` swept (unless another tick got further)."""
        kv = await self.c.ready()
        while clock.swept < end:
            doc = json.dumps({"passed": clock.passed, "swept": end}).encode()
            try:
                revision = await kv.update(_CLOCK, doc, last=clock.revision)
            except WrongRevision:
                again = await self.clock(create=False)
                assert again is not None
                clock = again
                continue
            return _Clock(clock.passed, end, revision)
        return clock


def _parse(subject: str) -> _Entry:
    *_, due, name, version = subject.split(".")
    return _Entry(subject, int(due), untoken(name), int(version))


async def _get(kv: Any, key: str) -> Any:
    try:
        return await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None  # removed since it was listed


class NatsSchedules:
    """The schedule methods of `stmtflow.stores.nats.NatsStore`."""

    def _run(self, what: str, make: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        raise NotImplementedError  # the store's own: runs ``make`` on its event loop

    def put_schedule(self, row: ScheduleRow, *, expected_version: int) -> ScheduleRow:
        """Write ``row`` if the stored version is ``expected_version`` (0: not stored yet)."""
        if row.due_at is not None:
            row = ScheduleRow(row.name, row.spec, aware(row.due_at, "due_at"), row.version)
        return self._run(
            f"store schedule {row.name!r}", lambda c: _Schedules(c).put(row, expected_version)
        )

    def get_schedule(self, name: str) -> ScheduleRow:
        """The schedule named ``name``; `NotFound` if there is none."""
        found = self._run(f"read schedule {name!r}", lambda c: _Schedules(c).read(name))
        if found is None:
            raise missing_schedule(name)
        return found.row

    def list_schedules(self) -> builtins.list[ScheduleRow]:
        """Every schedule, by name."""
        return self._run("list the schedules", lambda c: _Schedules(c).every())

    def delete_schedule(self, name: str) -> bool:
        """Remove the schedule; False if there was none."""
        return self._run(f"remove schedule {name!r}", lambda c: _Schedules(c).delete(name))

    def due_schedules(self, now: datetime, limit: int = 100) -> builtins.list[ScheduleRow]:
        """Schedules with ``due_at <= now``, earliest first, at most ``limit``."""
        now = aware(now, "now")
        if limit <= 0:
            return []
        return self._run("find due schedules", lambda c: _Schedules(c).due(now, limit))

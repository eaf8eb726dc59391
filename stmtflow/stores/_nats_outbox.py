"""The NATS store's outbox: rows committed in the record's intent, then kept in two streams.

What a write emits (`Batch.emit`) travels in the record's `Intent`
(`stmtflow.stores._nats_inbox`): it commits with the checkpoint or not at all, and is applied
after, idempotently, like the children and messages of the same write. Applying it puts each
message in stream ``STMTFLOW_B_OUTBOX`` (one message per subject), then files it as due:

============================================  ===============================================
``stmtflow.B.om.<instance>.<key>``            the message, put only if its key is not stored
                                              (an expected last sequence of 0): its stream
                                              sequence is `OutboxMessage.seq`
``stmtflow.B.oq.<seq>``                       its delivery state once claimed: version, next
                                              attempt, attempts, last error (written by
                                              compare-and-set on its last sequence)
============================================  ===============================================

and in stream ``STMTFLOW_B_OUTDUE`` the due index, hints checked against the state like the
records' (`stmtflow.stores._nats_client`): ``stmtflow.B.od.n.<seq>.0`` for a message never
claimed, ``stmtflow.B.od.<minute>.<seq>.<v>`` for one due again in that minute (the state's
version ``v`` put it), and a marker ``stmtflow.B.odm.<minute>`` per minute that may hold
entries. A claim reads the markers (one request), the entries of the never-claimed slot and of
the due minutes (one request each), then the states and messages of the first ``limit``
candidates: its cost follows the due messages, not the outbox's size. Each claim, retry or
first claim puts its new entry before the state's compare-and-set and drops the old one
after, so a crash leaves extra entries (dropped by readers), never a message without one.

A sent message is purged (message, state and entries); a message is kept until then, even when
its instance is pruned.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import nats.js.errors

from stmtflow.stores._outbox import OutboxMessage
from stmtflow.stores.base import aware

if TYPE_CHECKING:
    from stmtflow.stores._nats_client import Client

__all__ = ["NEW", "NatsOutbox", "claim", "listing", "put", "retry", "sent"]

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_MINUTE = 60_000_000
"""A minute in microseconds: the width of a slot of the due index."""
_WRONG_LAST = (10071, 10164)
NEW = "n"
"""The slot of the messages never claimed."""


def _t(value: datetime) -> int:
    return (value - _EPOCH) // _MICRO


def _time(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + value * _MICRO


def _minute(value: datetime) -> str:
    return str(_t(value) // _MINUTE)


@dataclass(frozen=True, slots=True)
class _State:
    """A message's delivery state (absent: never claimed, version 0)."""

    v: int = 0
    next: int | None = None
    attempts: int = 0
    error: str | None = None
    seq: int = 0
    """The state's own stream sequence (0: not stored), for its compare-and-set."""

    @property
    def slot(self) -> str:
        return NEW if self.next is None else str(self.next // _MINUTE)


class _Names:
    def __init__(self, c: Client) -> None:
        n = c.names
        self.stream, self.due_stream, p = n.outbox_stream, n.outdue_stream, n.prefix
        self.p = p

    def message(self, m: OutboxMessage) -> str:
        from stmtflow.stores._nats_keys import token

        return f"{self.p}.om.{token(m.instance_id)}.{token(m.key)}"

    def state(self, seq: int) -> str:
        return f"{self.p}.oq.{seq}"

    def due(self, slot: str, seq: int, v: int) -> str:
        return f"{self.p}.od.{slot}.{seq}.{v}"

    def marker(self, minute: str) -> str:
        return f"{self.p}.odm.{minute}"


async def _publish(c: Client, subject: str, value: bytes, last: int | None = None) -> int | None:
    """Put ``value`` on ``subject`` (when ``last`` is given: only if its last sequence is that,
    0 for none); its stream sequence, or None when ``last`` did not hold."""
    assert c.js is not None
    headers = None if last is None else {"Nats-Expected-Last-Subject-Sequence": str(last)}
    try:
        ack = await c.js.publish(subject, value, headers=headers)
    except nats.js.errors.APIError as exc:
        if last is not None and exc.err_code in _WRONG_LAST:
            return None
        raise
    return int(ack.seq)


async def _last(c: Client, stream: str, subject: str) -> Any | None:
    assert c.js is not None
    try:
        return await c.js.get_last_msg(stream, subject, direct=True)
    except nats.js.errors.NotFoundError:
        return None


async def _state(c: Client, names: _Names, seq: int) -> _State:
    msg = await _last(c, names.stream, names.state(seq))
    if msg is None:
        return _State()
    doc = json.loads(msg.data)
    return _State(doc["v"], doc["next"], doc["attempts"], doc["error"], int(msg.seq))


async def _message(c: Client, names: _Names, seq: int, state: _State) -> OutboxMessage | None:
    assert c.js is not None
    try:
        msg = await c.js.get_msg(names.stream, seq, direct=True)
    except nats.js.errors.NotFoundError:
        return None
    if msg.subject is None or ".om." not in msg.subject or msg.data is None:
        return None
    doc = json.loads(msg.data)
    return OutboxMessage(
        key=doc["key"],
        topic=doc["topic"],
        payload=doc["payload"],
        instance_id=doc["instance_id"],
        thread_id=doc["thread_id"],
        step=doc["step"],
        seq=seq,
        created_at=_time(doc["created_at"]),
        attempts=state.attempts,
        last_error=state.error,
        next_attempt_at=_time(state.next),
    )


async def _move(c: Client, names: _Names, seq: int, before: _State, after: _State) -> bool:
    """Write ``after`` over ``before`` by compare-and-set, its due entry put first and the old
    one dropped after; False if another write came first."""
    assert c.js is not None
    old, new = (before.slot, before.v), (after.slot, after.v)
    if after.next is not None and new != old:
        minute = after.slot
        acks = [await c.js.publish_async(names.due(minute, seq, after.v), b"")]
        acks.append(await c.js.publish_async(names.marker(minute), b""))  # after its entry
        await asyncio.wait_for(asyncio.gather(*acks), c.settings.timeout)
    doc = {"v": after.v, "next": after.next, "attempts": after.attempts, "error": after.error}
    value = json.dumps(doc, ensure_ascii=False).encode()
    if await _publish(c, names.state(seq), value, before.seq) is None:
        return False
    if new != old:
        c.later(c.purge([names.due(before.slot, seq, before.v)]))
    return True


async def _repair(c: Client, names: _Names, seq: int, state: _State, subject: str) -> None:
    """Drop a pending entry whose writer must have died (older than `GRACE`), the state first
    rewritten unchanged, so a writer that was only slow fails its compare-and-set."""
    await c.drop_abandoned(subject, lambda: _move(c, names, seq, state, state))


# -- the store's calls --------------------------------------------------------------------------


async def put(c: Client, messages: Iterable[OutboxMessage]) -> None:
    """Store the messages of an intent being applied (a key stored already is left as it is,
    and filed as never claimed again if it was never claimed: a put that died in between)."""
    names = _Names(c)

    async def one(m: OutboxMessage) -> None:
        doc = {
            "key": m.key,
            "topic": m.topic,
            "payload": m.payload,
            "instance_id": m.instance_id,
            "thread_id": m.thread_id,
            "step": m.step,
            "created_at": None if m.created_at is None else _t(m.created_at),
        }
        value = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        seq = await _publish(c, names.message(m), value, 0)
        if seq is None:
            found = await _last(c, names.stream, names.message(m))
            if found is None or (await _state(c, names, int(found.seq))).seq:
                return  # sent meanwhile, or claimed: it has its entry
            seq = int(found.seq)
        assert c.js is not None
        await c.js.publish(names.due(NEW, seq, 0), b"")

    await c.ready()
    await asyncio.gather(*(one(m) for m in messages))


async def claim(
    c: Client, now: datetime, lease: timedelta, limit: int
) -> builtins.list[OutboxMessage]:
    """Claim up to ``limit`` due messages until ``now + lease``, in emission order."""
    await c.ready()
    names, until = _Names(c), _t(now)
    markers = await c.subjects(names.due_stream, names.marker("*"))
    minutes = sorted(int(m.rsplit(".", 1)[1]) for m in markers)
    last = int(_minute(now))
    slots = [NEW, *(str(m) for m in minutes if m <= last)]
    listed = await asyncio.gather(
        *(c.subjects(names.due_stream, f"{names.p}.od.{s}.*.*") for s in slots)
    )
    entries = sorted(
        (int(seq), slot, int(v))
        for subjects in listed
        for *_, slot, seq, v in (s.split(".") for s in subjects)
    )
    for slot, subjects in zip(slots, listed, strict=True):
        if slot != NEW and not subjects:
            left = c.subjects(names.due_stream, f"{names.p}.od.{slot}.*.*")
            await c.drop_marker(names.marker(slot), left)
    claimed: builtins.list[OutboxMessage] = []
    stale: builtins.list[str] = []
    read = 0
    while len(claimed) < limit and read < len(entries):
        chunk = entries[read : read + 2 * (limit - len(claimed))]
        read += len(chunk)
        states = await asyncio.gather(*(_state(c, names, seq) for seq, _, _ in chunk))
        due: builtins.list[tuple[int, str, int, _State]] = []
        for (seq, slot, v), state in zip(chunk, states, strict=True):
            if (slot, v) != (state.slot, state.v):
                if state.v >= v:
                    stale.append(names.due(slot, seq, v))
                else:  # a write in flight puts it, or one that died: repaired after GRACE
                    c.later(_repair(c, names, seq, state, names.due(slot, seq, v)))
            elif state.next is None or state.next <= until:
                due.append((seq, slot, v, state))
        due = due[: limit - len(claimed)]
        messages = await asyncio.gather(*(_message(c, names, seq, st) for seq, _, _, st in due))
        moves = []
        for (seq, slot, v, state), message in zip(due, messages, strict=True):
            if message is None:  # sent: the entry is left over
                stale.append(names.due(slot, seq, v))
                continue
            after = _State(state.v + 1, _t(now + lease), state.attempts, state.error)
            moves.append((message, _move(c, names, seq, state, after)))
        done = await asyncio.gather(*(move for _, move in moves))
        claimed += [m for (m, _), ok in zip(moves, done, strict=True) if ok]
    if stale:
        c.later(c.purge(stale))
    return sorted(claimed, key=lambda m: m.seq)


async def sent(c: Client, seqs: Sequence[int]) -> None:
    """Purge the messages, their states and their due entries."""
    await c.ready()
    names = _Names(c)
    assert c.js is not None

    js = c.js

    async def one(seq: int) -> None:
        try:
            msg = await js.get_msg(names.stream, seq, direct=True)
        except nats.js.errors.NotFoundError:
            return
        if msg.subject is not None and ".om." in msg.subject:
            await c.purge([msg.subject])
        await c.purge([names.state(seq)])
        await js.purge_stream(names.due_stream, subject=f"{names.p}.od.*.{seq}.*")

    await asyncio.gather(*(one(seq) for seq in seqs))


async def retry(c: Client, seqs: Sequence[int], at: datetime, error: str | None) -> None:
    """Make the messages due at ``at`` (counting a failed delivery when ``error``)."""
    await c.ready()
    names = _Names(c)

    async def one(seq: int) -> None:
        for _ in range(100):
            state = await _state(c, names, seq)
            if await _message(c, names, seq, state) is None:
                return
            attempts = state.attempts + (error is not None)
            after = _State(state.v + 1, _t(at), attempts, state.error if error is None else error)
            if await _move(c, names, seq, state, after):
                return

    await asyncio.gather(*(one(seq) for seq in seqs))


async def listing(c: Client, instance_id: str | None) -> builtins.list[OutboxMessage]:
    """Every stored message (of ``instance_id``), by seq."""
    from stmtflow.stores._nats_keys import token

    await c.ready()
    names = _Names(c)
    who = "*" if instance_id is None else token(instance_id)
    subjects = await c.subjects(names.stream, f"{names.p}.om.{who}.*")
    found = await asyncio.gather(*(_last(c, names.stream, s) for s in subjects))
    seqs = sorted(int(m.seq) for m in found if m is not None)
    states = await asyncio.gather(*(_state(c, names, seq) for seq in seqs))
    messages = await asyncio.gather(
        *(_message(c, names, seq, st) for seq, st in zip(seqs, states, strict=True))
    )
    return [m for m in messages if m is not None]


class NatsOutbox:
    """The outbox methods of `stmtflow.stores.nats.NatsStore`."""

    def _run(self, what: str, make: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        raise NotImplementedError  # the store's own: runs ``make`` on its event loop

    def outbox_claim(
        self, now: datetime, lease: timedelta, limit: int = 100
    ) -> builtins.list[OutboxMessage]:
        now = aware(now, "now")
        if limit <= 0:
            return []
        return self._run("claim outbox messages", lambda c: claim(c, now, lease, limit))

    def outbox_sent(self, seqs: Sequence[int]) -> None:
        if seqs:
            self._run("delete sent outbox messages", lambda c: sent(c, seqs))

    def outbox_retry(
        self, seqs: Sequence[int], retry_at: datetime, error: str | None = None
    ) -> None:
        at = aware(retry_at, "retry_at")
        if seqs:
            self._run("put outbox messages back", lambda c: retry(c, seqs, at, error))

    def outbox(self, instance_id: str | None = None) -> builtins.list[OutboxMessage]:
        return self._run("list the outbox", lambda c: listing(c, instance_id))

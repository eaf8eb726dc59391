"""The NATS store's inboxes and children: mail kept in each record, batches as intents.

JetStream KV writes one key at a time: nothing spans two records. So what the SQL stores do in
one transaction is done here in steps that each are one compare-and-set, arranged so that a
crash between any two loses nothing and duplicates nothing:

1. **Own mail, with the checkpoint.** An instance's inbox lives inside its own record
   (`Mail`): the messages not yet taken, the keys it knows, the last seq it gave. What a write
   takes, keeps or marks as delivered from its own inbox (`Batch.take`, ``keep``, ``keys``) is
   part of the record's new value: it commits with the checkpoint or not at all.
2. **The rest, as an intent in the same write.** The children a write creates, the
   messages it posts to others and the outbox rows its steps emitted (`Batch.create`, ``post``,
   ``emit``: `stmtflow.stores._nats_outbox`) are written into the record too, as its `Intent`
   (tagged with the record's new version), and so are the lock keys whose rows it changed (the
   rows themselves are the record's own: `stmtflow.stores._nats_locks`). The write that
   commits the checkpoint commits the intent: from then on, the children and messages exist
   *in effect*.
3. **Applied, idempotently, then cleared.** The writer then creates each child with
   create-if-absent (an id taken already is left as it is) and appends each message to its
   recipient's record by compare-and-set, remembering in the recipient which intent each
   message not yet taken came from (`Mail.origins`), so an intent applied again while its
   messages wait appends nothing. Then it clears the intent (one more compare-and-set of its
   own record, which leaves the version alone).
4. **Recovery.** A record whose intent is still set (its writer died between 2 and 3, or a
   network error stopped it) is finished before anything else writes it: every update, claim,
   renew or release of the NATS store applies a left-over intent first. Such a record is also
   due (filed in the resuming slot of the due index), so a worker's tick claims it, and the
   claim finishes it, even if nothing else would ever write it again.

A message appended to a record does not change its version: a unit holding the record, whose
next write finds a new KV revision, reads again, finds its version unchanged and writes over
the fresh value, the new message kept. A record with a ``new`` message is due, like one with an
intent. The costs (docs/stores.md): a batch write is 2 + (children + recipients) round trips
instead of 1, a posted message is a write of the recipient's whole record, and a record carries
every key it was sent. An intent applied again *after* its recipient took the message (a
writer that stalled for the whole time it took the recipient to run) delivers it again; the
engine's messages are made for that: a child's end is addressed to the armed ``pc`` of the wait
it ends (a second copy finds that wait gone and is dropped), and a cancel of an instance that
ended does nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from stmtflow.errors import ConflictError, NotFound
from stmtflow.stores import _nats_outbox as outbox
from stmtflow.stores._batch import Batch, Message
from stmtflow.stores._nats_locks import Held, held_doc, held_from, plan, settle
from stmtflow.stores._outbox import OutboxMessage
from stmtflow.stores.base import Record, with_changes

if TYPE_CHECKING:
    from stmtflow.stores._nats_client import Client
    from stmtflow.stores._nats_keys import Stored

__all__ = [
    "NO_MAIL",
    "Intent",
    "Mail",
    "NatsInboxes",
    "born",
    "deliver",
    "family_doc",
    "family_fields",
    "finish",
    "mail_doc",
    "mail_from",
]


_RETRIES = 100
"""Compare-and-set attempts of one append or clear (each lost only to another write)."""


@dataclass(frozen=True, slots=True)
class Intent:
    """What a committed write still has to do to other records: create, post, settle the
    queues of the lock keys whose rows it changed (`stmtflow.stores._nats_locks`)."""

    version: int
    """The record version whose write carried it (tells two intents of one sender apart)."""
    create: tuple[Record, ...] = ()
    post: tuple[Message, ...] = ()
    emit: tuple[OutboxMessage, ...] = ()
    """Outbox rows (`stmtflow.stores._nats_outbox`), their creation time set."""
    locks: tuple[str, ...] = ()
    """The lock keys whose rows the write changed (the rows are `Mail.locks`)."""


@dataclass(frozen=True, slots=True)
class Mail:
    """An instance's inbox and intent, kept inside its record."""

    box: tuple[Message, ...] = ()
    """Messages not yet taken (``new`` or ``kept``), in arrival order."""
    seq: int = 0
    """The last seq given to a message of this inbox."""
    keys: frozenset[str] = frozenset()
    """Keys of messages taken (or events delivered directly): never delivered again."""
    origins: Mapping[int, str] = field(default_factory=dict)
    """Seq -> the intent (sender id and version, NUL between) a message in ``box`` came from."""
    intent: Intent | None = None
    """This record's own batch, committed and not yet applied to the others."""
    locks: tuple[Held, ...] = ()
    """The instance's lock rows (`stmtflow.stores._nats_locks`)."""

    @property
    def urgent(self) -> bool:
        """Due whatever the wake-up: a ``new`` message to take, or an intent to finish."""
        return self.intent is not None or any(m.status == "new" for m in self.box)

    def knows(self, key: str) -> bool:
        return key in self.keys or any(m.key == key for m in self.box)

    def own(self, batch: Batch, version: int, now: datetime) -> Mail:
        """This mail after a write (at ``version``, at ``now``) that carries ``batch``; its
        children get their creation time now, so every finisher creates the same record."""
        taken, kept = set(batch.take), set(batch.keep)
        keys = set(self.keys) | set(batch.keys)
        box: list[Message] = []
        for m in self.box:
            if m.seq in taken or (m.key is not None and m.key in batch.keys):
                if m.key is not None:
                    keys.add(m.key)
                continue
            box.append(dataclasses.replace(m, status="kept") if m.seq in kept else m)
        intent = None
        locks, changed = plan(self.locks, batch.locks, version)
        if batch.create or batch.post or batch.emit or changed:
            children = tuple(born(child, now) for child in batch.create)
            emits = tuple(dataclasses.replace(m, created_at=now) for m in batch.emit)
            intent = Intent(version, children, tuple(batch.post), emits, changed)
        seqs = {m.seq for m in box}
        origins = {seq: tag for seq, tag in self.origins.items() if seq in seqs}
        return Mail(tuple(box), self.seq, frozenset(keys), origins, intent, locks)

    def deliver(self, messages: list[Message], origin: tuple[str, int] | None) -> Mail | None:
        """This mail with ``messages`` appended (a key it knows is skipped); None when none is
        appended (or ``origin``, a sender's intent, was appended and is not yet taken)."""
        tag = None if origin is None else f"{origin[0]}\0{origin[1]}"
        if tag is not None and tag in self.origins.values():
            return None
        origins = dict(self.origins)
        box, seq = list(self.box), self.seq
        known = set(self.keys) | {m.key for m in box if m.key is not None}
        for m in messages:
            if m.key is not None and m.key in known:
                continue
            seq += 1
            box.append(dataclasses.replace(m, seq=seq, status="new"))
            if tag is not None:
                origins[seq] = tag
            if m.key is not None:
                known.add(m.key)
        if seq == self.seq:
            return None
        return Mail(tuple(box), seq, self.keys, origins, self.intent, self.locks)


NO_MAIL = Mail()


# -- encoding (inside the record's JSON) -------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _t(value: datetime | None) -> int | None:
    return None if value is None else (value - _EPOCH) // _MICRO


def _time(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + value * _MICRO


def family_doc(rec: Record) -> dict[str, Any]:
    """A record's parent fields, for its JSON."""
    return {
        "parent": rec.parent_id,
        "root": rec.root_id,
        "parent_event": rec.parent_event,
        "on_parent_end": rec.on_parent_end,
    }


def family_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The parent fields of a record's JSON (`family_doc`), as `Record` fields."""
    return {
        "parent_id": doc.get("parent"),
        "root_id": doc.get("root") or doc["id"],
        "parent_event": doc.get("parent_event"),
        "on_parent_end": doc.get("on_parent_end"),
    }


def _message_doc(m: Message) -> list[Any]:
    return [m.to, m.kind, m.event, m.thread_id, m.pc, m.input, m.key, m.buffered, m.status, m.seq]


def _message(doc: list[Any]) -> Message:
    to, kind, event, thread_id, pc, input, key, buffered, status, seq = doc
    return Message(to, kind, event, thread_id, pc, input, key, buffered, status, seq)


def _emit_doc(m: OutboxMessage) -> list[Any]:
    return [m.key, m.topic, m.payload, m.instance_id, m.thread_id, m.step, _t(m.created_at)]


def _emit(doc: list[Any]) -> OutboxMessage:
    key, topic, payload, instance_id, thread_id, step, created = doc
    return OutboxMessage(key, topic, payload, instance_id, thread_id, step, 0, _time(created))


_CHILD_FIELDS = (
    "id",
    "workflow",
    "data",
    "state",
    "status",
    "lease_owner",
    "error",
    "parent_id",
    "root_id",
    "parent_event",
    "on_parent_end",
)
_CHILD_TIMES = ("wake_at", "lease_expires", "created_at", "updated_at")


def _child_doc(rec: Record) -> dict[str, Any]:
    doc = {name: getattr(rec, name) for name in _CHILD_FIELDS}
    doc.update({name: _t(getattr(rec, name)) for name in _CHILD_TIMES})
    return doc


def _child(doc: dict[str, Any]) -> Record:
    times: dict[str, Any] = {name: _time(doc[name]) for name in _CHILD_TIMES}
    return born(Record(**{name: doc[name] for name in _CHILD_FIELDS}, **times), _EPOCH)


def mail_doc(mail: Mail) -> dict[str, Any] | None:
    """A record's mail for its JSON (None for none)."""
    if mail == NO_MAIL:
        return None
    intent = mail.intent
    return {
        "box": [_message_doc(m) for m in mail.box],
        "seq": mail.seq,
        "keys": sorted(mail.keys),
        "origins": {str(seq): tag for seq, tag in mail.origins.items()},
        "intent": None
        if intent is None
        else {
            "v": intent.version,
            "create": [_child_doc(r) for r in intent.create],
            "post": [_message_doc(m) for m in intent.post],
            "emit": [_emit_doc(m) for m in intent.emit],
            "locks": list(intent.locks),
        },
        "locks": held_doc(mail.locks),
    }


def mail_from(doc: dict[str, Any] | None) -> Mail:
    """The `Mail` of a record's JSON (`mail_doc`)."""
    if doc is None:
        return NO_MAIL
    found = doc["intent"]
    intent = (
        None
        if found is None
        else Intent(
            found["v"],
            tuple(_child(r) for r in found["create"]),
            tuple(_message(m) for m in found["post"]),
            tuple(_emit(m) for m in found.get("emit", ())),
            tuple(found.get("locks", ())),
        )
    )
    box = tuple(_message(m) for m in doc["box"])
    origins = {int(seq): tag for seq, tag in doc["origins"].items()}
    locks = held_from(doc.get("locks"))
    return Mail(box, doc["seq"], frozenset(doc["keys"]), origins, intent, locks)


# -- applying (on the store's event loop) ------------------------------------------------------


def born(record: Record, now: datetime) -> Record:
    """``record`` as `Store.create` stores it: version 1, fence 1 when leased, times, root."""
    return with_changes(
        record,
        version=1,
        fence=1 if record.lease_owner is not None else 0,
        created_at=record.created_at or now,
        updated_at=now,
        root_id=record.root_id or record.id,
        inbox=False,
    )


async def deliver(
    c: Client, to: str, messages: list[Message], origin: tuple[str, int] | None
) -> bool | None:
    """Append ``messages`` to ``to``'s inbox: True if any was, False if none (known keys, or
    ``origin`` waiting there already), None when ``to`` does not exist."""
    current = await c.known(to)
    for _ in range(_RETRIES):
        if current is None:
            return None
        mail = current.mail.deliver(messages, origin)
        if mail is None:
            return False
        if await c.write(current, current.record, mail=mail) is not None:
            return True
        current = await c.read(to)
    raise ConflictError(f"posting to workflow instance {to!r}: gave up after {_RETRIES} races")


async def finish(c: Client, stored: Stored) -> None:
    """Apply ``stored``'s intent (children created if absent, messages appended once, lock
    queues settled), then clear it from the record if no later write did already."""
    intent = stored.mail.intent
    if intent is None:
        return
    sender = stored.record.id
    if intent.emit:
        await outbox.put(c, intent.emit)
    for child in intent.create:
        try:
            await c.create(child, ())
        except ConflictError:
            continue  # created already (by this intent applied before, or another writer)
    to: dict[str, list[Message]] = {}
    for message in intent.post:
        to.setdefault(message.to, []).append(message)
    origin = (sender, intent.version)
    await asyncio.gather(*(deliver(c, id, batch, origin) for id, batch in to.items()))
    await settle(c, stored)
    current: Stored | None = stored
    for _ in range(_RETRIES):
        if current is None or current.mail.intent is None:
            return
        if current.mail.intent.version != intent.version:
            return
        cleared = dataclasses.replace(current.mail, intent=None)
        if await c.write(current, current.record, mail=cleared) is not None:
            return
        current = await c.read(sender)
    raise ConflictError(f"workflow instance {sender!r}: gave up clearing its intent")


T = TypeVar("T")


class NatsInboxes:
    """The inbox methods of `stmtflow.stores.nats.NatsStore`."""

    def _run(self, what: str, make: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        raise NotImplementedError  # the store's own: runs ``make`` on its event loop

    def post(self, message: Message) -> bool:
        """Append ``message`` to its instance's record (`Store.post`); False for a known key."""

        async def post(c: Client) -> bool:
            posted = await deliver(c, message.to, [message], None)
            if posted is None:
                raise NotFound(f"no workflow instance with id {message.to!r}")
            return posted

        return self._run(f"post to {message.to!r}", post)

    def inbox(self, id: str) -> builtins.list[Message]:
        """The messages of ``id`` not yet taken, in arrival order (read from its record)."""

        async def inbox(c: Client) -> builtins.list[Message]:
            stored = await c.read(id)
            return [] if stored is None else list(stored.mail.box)

        return self._run(f"read the inbox of {id!r}", inbox)

    def known_key(self, id: str, key: str) -> bool:
        """Whether ``id`` holds or took a message with ``key``."""

        async def known(c: Client) -> bool:
            stored = await c.read(id)
            return stored is not None and stored.mail.knows(key)

        return self._run(f"look up key {key!r} of {id!r}", known)

"""The lock index: one row per thread that waits at or holds a `Lock`, written with its state.

An instance's rows follow from its state (`stmtflow.runtime._locks.claims_of`): a thread whose
lock event is set up waits, a thread inside the lock's body holds. Whoever writes a state
hands its claims in the write's `Batch` (``locks=``, replacing the instance's whole set), so
the index never disagrees with a committed state: a thread that leaves the body, ends, fails
or is cancelled simply no longer claims, and its row goes in the same commit.

Granting happens in the store, in that same transaction: for every key whose rows changed, the
waiters are served in arrival order (``seq``) while fewer than ``limit`` rows hold it; each one
granted gets a `Message` in its inbox for its lock event (``f"{name}.lock"``), which makes its
instance due. Nothing polls the keys. SQLite runs `apply_locks` (written for either parameter
style: ``mark`` spells a named parameter, as in `stmtflow.stores._sql`) under its single
writer; PostgreSQL runs the same rules as two statements that decide on the server, so the
write waits for no answer in between (`stmtflow.stores._postgres_locks`), serialising the
grants of one key with a transaction-level advisory lock.

Example:
    >>> rows = [LockRow(1, "acct", "a", "_main_", "pay", 1, True),
    ...         LockRow(2, "acct", "b", "_main_", "pay", 1, False)]
    >>> [row.instance_id for row in grants(rows)]
    []
    >>> [row.instance_id for row in grants(rows[1:])]
    ['b']
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stmtflow.stores._batch import Message

__all__ = [
    "LOCK_EVENT",
    "LockClaim",
    "LockRow",
    "apply_locks",
    "check_claims",
    "grant_message",
    "grants",
    "lock_event",
]

LOCK_EVENT = ".lock"
"""The suffix of a lock's event name: the event ``f"{name}.lock"`` fires once it is granted."""


def lock_event(name: str) -> str:
    """The event a `Lock` named ``name`` waits on."""
    return f"{name}{LOCK_EVENT}"


@dataclass(frozen=True, slots=True)
class LockClaim:
    """What one thread of the written instance claims: a slot of ``key`` for its lock ``name``.

    ``key`` is None for a claim the store holds a row for already (a thread inside the body:
    its row keeps the key it arrived with). ``again`` marks a thread that left the body and
    arrived at the same lock again since the last write (a loop): its old row goes, and it
    queues anew behind the waiters.
    """

    thread_id: str
    name: str
    key: str | None
    limit: int
    again: bool = False
    pc: int = 0
    """The armed pc of a waiting thread's lock event (0 for a held claim): a store whose grant
    can reach the thread twice (NATS) addresses it to that wait, so a late copy is dropped."""


@dataclass(frozen=True, slots=True)
class LockRow:
    """A stored claim: ``seq`` is its arrival order, ``granted`` whether it holds a slot."""

    seq: int
    key: str
    instance_id: str
    thread_id: str
    name: str
    limit: int
    granted: bool


def check_claims(record_id: str, claims: Iterable[LockClaim]) -> tuple[LockClaim, ...]:
    """``claims`` as a tuple, each a `LockClaim`, once per thread and lock; anything else is a
    `ValueError` (and nothing is written)."""
    rows = tuple(claims)
    seen: set[tuple[str, str]] = set()
    for claim in rows:
        if not isinstance(claim, LockClaim):
            raise ValueError(f"record {record_id!r}: locks must be LockClaim, got {claim!r}")
        mark = (claim.thread_id, claim.name)
        if mark in seen:
            raise ValueError(
                f"record {record_id!r}: thread {claim.thread_id!r} claims lock {claim.name!r} twice"
            )
        seen.add(mark)
    return rows


def grants(rows: Sequence[LockRow]) -> list[LockRow]:
    """The waiters of one key's ``rows`` (in arrival order) that get a slot now.

    Strictly first come, first served: the first waiter that does not fit stops the grants, so
    a later one never overtakes it."""
    held = sum(1 for row in rows if row.granted)
    granted = []
    for row in rows:
        if row.granted:
            continue
        if held >= row.limit:
            break
        granted.append(row)
        held += 1
    return granted


def grant_message(row: LockRow) -> Message:
    """The message that tells ``row``'s thread it holds the lock (its input is the key)."""
    return Message(
        to=row.instance_id,
        event=lock_event(row.name),
        thread_id=row.thread_id,
        input=json.dumps(row.key),
    )


# -- the SQL both database stores share --------------------------------------------------------

Mark = Callable[[str], str]
Execute = Callable[[str, dict[str, Any]], list[Any]]
"""Runs one statement with named parameters in the write's transaction; returns its rows."""

_COLUMNS = "seq, lock_key, instance_id, thread_id, name, slots, granted"


def _row(values: Sequence[Any]) -> LockRow:
    seq, key, instance_id, thread_id, name, slots, granted = values
    return LockRow(seq, key, instance_id, thread_id, name, slots, bool(granted))


def apply_locks(
    execute: Execute,
    id: str,
    claims: Sequence[LockClaim],
    mark: Mark,
) -> list[Message]:
    """Replace instance ``id``'s rows of ``stmtflow_locks`` with ``claims`` and grant the keys
    that changed; returns the messages for the threads granted now (the caller posts them in
    the same transaction)."""
    found = [
        _row(r)
        for r in execute(
            f"SELECT {_COLUMNS} FROM stmtflow_locks WHERE instance_id = {mark('id')}", {"id": id}
        )
    ]
    wanted = {(c.thread_id, c.name): c for c in claims}
    again = {mark_ for mark_, c in wanted.items() if c.again}
    gone = [r for r in found if (r.thread_id, r.name) not in wanted.keys() - again]
    have = {(r.thread_id, r.name) for r in found} - again
    new = [c for mark_, c in wanted.items() if mark_ not in have and c.key is not None]
    keys = sorted({r.key for r in gone} | {c.key for c in new if c.key is not None})
    if not keys:
        return []
    for row in gone:
        execute(f"DELETE FROM stmtflow_locks WHERE seq = {mark('seq')}", {"seq": row.seq})
    for claim in new:
        execute(
            "INSERT INTO stmtflow_locks (lock_key, instance_id, thread_id, name, slots, granted) "
            f"VALUES ({mark('key')}, {mark('id')}, {mark('thread')}, {mark('name')}, "
            f"{mark('slots')}, 0)",
            {
                "key": claim.key,
                "id": id,
                "thread": claim.thread_id,
                "name": claim.name,
                "slots": claim.limit,
            },
        )
    messages = []
    for key in keys:
        rows = [
            _row(r)
            for r in execute(
                f"SELECT {_COLUMNS} FROM stmtflow_locks WHERE lock_key = {mark('key')} "
                "ORDER BY seq",
                {"key": key},
            )
        ]
        for row in grants(rows):
            execute(
                f"UPDATE stmtflow_locks SET granted = 1 WHERE seq = {mark('seq')}",
                {"seq": row.seq},
            )
            messages.append(grant_message(row))
    return messages

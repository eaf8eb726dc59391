"""The SQLite store's inboxes: the messages instances post to each other (`Message`).

The rows of ``stmtflow_inbox`` (`stmtflow.stores._sqlite_schema`), written in the transaction of
the instance write whose `Batch` carries them, or on their own for a buffered send.
"""

from __future__ import annotations

import sqlite3

from stmtflow.stores.base import Batch, Message

__all__ = ["apply_messages", "known_key", "pending", "post"]

_MESSAGE = "seq, instance_id, kind, event, thread_id, pc, input, key, buffered, status"


def _message(row: sqlite3.Row) -> Message:
    return Message(
        to=row["instance_id"],
        kind=row["kind"],
        event=row["event"],
        thread_id=row["thread_id"],
        pc=row["pc"],
        input=row["input"],
        key=row["key"],
        buffered=bool(row["buffered"]),
        status=row["status"],
        seq=row["seq"],
    )


_POST = (
    "INSERT OR IGNORE INTO stmtflow_inbox "
    "(instance_id, kind, event, thread_id, pc, input, key, buffered, status, created_at) "
    "SELECT :to, :kind, :event, :thread_id, :pc, :input, :key, :buffered, :status, :now "
    "WHERE EXISTS (SELECT 1 FROM stmtflow_instances WHERE id = :to)"
)


def post(conn: sqlite3.Connection, message: Message, now: str, status: str = "new") -> bool:
    """Insert ``message`` (for an instance that exists, with a key not yet known)."""
    params = {
        "to": message.to,
        "kind": message.kind,
        "event": message.event,
        "thread_id": message.thread_id,
        "pc": message.pc,
        "input": message.input,
        "key": message.key,
        "buffered": int(message.buffered),
        "status": status,
        "now": now,
    }
    return conn.execute(_POST, params).rowcount == 1


def apply_messages(conn: sqlite3.Connection, id: str, batch: Batch, now: str) -> None:
    """The messages of ``batch`` (a write of instance ``id``): posted, taken, kept, keys."""
    for message in batch.post:
        post(conn, message, now)
    for seq in batch.take:
        conn.execute(
            "DELETE FROM stmtflow_inbox WHERE seq = ? AND instance_id = ? AND key IS NULL",
            (seq, id),
        )
        conn.execute(
            "UPDATE stmtflow_inbox SET status = 'done' WHERE seq = ? AND instance_id = ?",
            (seq, id),
        )
    for seq in batch.keep:
        conn.execute(
            "UPDATE stmtflow_inbox SET status = 'kept' "
            "WHERE seq = ? AND instance_id = ? AND status = 'new'",
            (seq, id),
        )
    for key in batch.keys:
        post(conn, Message(to=id, key=key), now, status="done")


def pending(conn: sqlite3.Connection, id: str) -> list[Message]:
    """Instance ``id``'s messages not yet taken, in arrival order."""
    rows = conn.execute(
        f"SELECT {_MESSAGE} FROM stmtflow_inbox "
        "WHERE instance_id = ? AND status != 'done' ORDER BY seq",
        (id,),
    ).fetchall()
    return [_message(row) for row in rows]


def known_key(conn: sqlite3.Connection, id: str, key: str) -> bool:
    """Whether instance ``id`` holds or took a message with ``key``."""
    row = conn.execute(
        "SELECT 1 FROM stmtflow_inbox WHERE instance_id = ? AND key = ?", (id, key)
    ).fetchone()
    return row is not None

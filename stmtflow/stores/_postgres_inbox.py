"""The PostgreSQL store's inboxes: the messages instances post to each other (`Message`).

The rows of ``stmtflow_inbox`` (`stmtflow.stores.postgres`), written in the transaction of the
instance write whose `Batch` carries them, or on their own for a buffered send. Posting to
another instance inserts a row and locks nothing of that instance's record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from stmtflow.stores.base import Batch, Message

__all__ = ["apply_messages", "known_key", "pending", "post"]

_MESSAGE = "seq, instance_id, kind, event, thread_id, pc, input, key, buffered, status"

_POST = """
INSERT INTO stmtflow_inbox
    (instance_id, kind, event, thread_id, pc, input, key, buffered, status, created_at)
SELECT %(to)s, %(kind)s, %(event)s, %(thread_id)s, %(pc)s, %(input)s, %(key)s, %(buffered)s,
    %(status)s, %(now)s
WHERE EXISTS (SELECT 1 FROM stmtflow_instances WHERE id = %(to)s)
ON CONFLICT DO NOTHING
"""


def _message(row: tuple[Any, ...]) -> Message:
    seq, to, kind, event, thread_id, pc, input, key, buffered, status = row
    return Message(
        to=to,
        kind=kind,
        event=event,
        thread_id=thread_id,
        pc=pc,
        input=input,
        key=key,
        buffered=buffered,
        status=status,
        seq=seq,
    )


def _params(message: Message, now: datetime, status: str) -> dict[str, Any]:
    return {
        "to": message.to,
        "kind": message.kind,
        "event": message.event,
        "thread_id": message.thread_id,
        "pc": message.pc,
        "input": message.input,
        "key": message.key,
        "buffered": message.buffered,
        "status": status,
        "now": now,
    }


def post(
    conn: psycopg.Connection[Any], message: Message, now: datetime, status: str = "new"
) -> bool:
    """Insert ``message`` (for an instance that exists, with a key not yet known)."""
    return conn.execute(_POST, _params(message, now, status)).rowcount == 1


def apply_messages(conn: psycopg.Connection[Any], id: str, batch: Batch, now: datetime) -> None:
    """The messages of ``batch`` (a write of instance ``id``): posted, taken, kept, keys. Waits
    for no answer (the write's transaction runs them in pipeline mode)."""
    for message in batch.post:
        conn.execute(_POST, _params(message, now, "new"))
    if batch.take:
        conn.execute(
            "DELETE FROM stmtflow_inbox WHERE instance_id = %s AND seq = ANY(%s) AND key IS NULL",
            (id, list(batch.take)),
        )
        conn.execute(
            "UPDATE stmtflow_inbox SET status = 'done' WHERE instance_id = %s AND seq = ANY(%s)",
            (id, list(batch.take)),
        )
    if batch.keep:
        conn.execute(
            "UPDATE stmtflow_inbox SET status = 'kept' "
            "WHERE instance_id = %s AND seq = ANY(%s) AND status = 'new'",
            (id, list(batch.keep)),
        )
    for key in batch.keys:
        conn.execute(_POST, _params(Message(to=id, key=key), now, "done"))


def pending(conn: psycopg.Connection[Any], id: str) -> list[Message]:
    """Instance ``id``'s messages not yet taken, in arrival order."""
    rows = conn.execute(
        f"SELECT {_MESSAGE} FROM stmtflow_inbox "
        "WHERE instance_id = %s AND status <> 'done' ORDER BY seq",
        (id,),
    ).fetchall()
    return [_message(row) for row in rows]


def known_key(conn: psycopg.Connection[Any], id: str, key: str) -> bool:
    """Whether instance ``id`` holds or took a message with ``key``."""
    row = conn.execute(
        "SELECT 1 FROM stmtflow_inbox WHERE instance_id = %s AND key = %s", (id, key)
    ).fetchone()
    return row is not None

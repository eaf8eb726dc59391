"""The PostgreSQL store's outbox: the rows of ``stmtflow_outbox`` (`OutboxMessage`).

Inserted by the statement of the instance write whose `Batch` carries them (the step's
checkpoint, `folded`); claimed with ``FOR UPDATE SKIP LOCKED`` in one statement, so deliverers
on many machines share the rows without waiting on each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from stmtflow.stores._outbox import OutboxMessage

__all__ = ["OUTBOX_SCHEMA", "claim", "folded", "listing", "retry", "sent"]

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS stmtflow_outbox (
    seq bigserial PRIMARY KEY,
    key text NOT NULL UNIQUE,
    topic text NOT NULL,
    payload text NOT NULL,
    instance_id text NOT NULL,
    thread_id text NOT NULL,
    step text NOT NULL,
    created_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    next_attempt_at timestamptz
);
CREATE INDEX IF NOT EXISTS stmtflow_outbox_due ON stmtflow_outbox (next_attempt_at);
CREATE INDEX IF NOT EXISTS stmtflow_outbox_instance ON stmtflow_outbox (instance_id, seq);
"""
"""Added by schema version 4 (`stmtflow.stores._postgres_schema`). Rows outlive their instance
until delivered: a message committed is a message sent, whatever happens to the instance."""

_COLUMNS = (
    "seq, key, topic, payload, instance_id, thread_id, step, created_at, attempts, last_error, "
    "next_attempt_at"
)


def _message(row: tuple[Any, ...]) -> OutboxMessage:
    seq, key, topic, payload, instance_id, thread_id, step, created, attempts, error, due = row
    return OutboxMessage(
        key=key,
        topic=topic,
        payload=payload,
        instance_id=instance_id,
        thread_id=thread_id,
        step=step,
        seq=seq,
        created_at=created.astimezone(UTC),
        attempts=attempts,
        last_error=error,
        next_attempt_at=None if due is None else due.astimezone(UTC),
    )


_WITH = """
o_new AS (
    INSERT INTO stmtflow_outbox (key, topic, payload, instance_id, thread_id, step, created_at)
    SELECT m.key, m.topic, m.payload, m.instance_id, m.thread_id, m.step, %(o_now)s
    FROM w, jsonb_to_recordset(%(o_rows)s) AS m(
        key text, topic text, payload text, instance_id text, thread_id text, step text)
    ON CONFLICT (key) DO NOTHING
)"""


def folded(messages: Sequence[OutboxMessage], now: datetime) -> tuple[str, dict[str, Any]]:
    """The ``WITH`` item (after a write ``w``) inserting ``messages`` if the write returned its
    row (a known key is left as it is), and its parameters: part of the write's one statement,
    no round trip of its own."""
    rows = [
        {
            "key": m.key,
            "topic": m.topic,
            "payload": m.payload,
            "instance_id": m.instance_id,
            "thread_id": m.thread_id,
            "step": m.step,
        }
        for m in messages
    ]
    return _WITH, {"o_rows": Jsonb(rows), "o_now": now}


def claim(
    conn: psycopg.Connection[Any], now: datetime, lease: timedelta, limit: int
) -> list[OutboxMessage]:
    """Claim due rows, oldest first, in one statement."""
    rows = conn.execute(
        f"""UPDATE stmtflow_outbox SET next_attempt_at = %(until)s
        WHERE seq IN (
            SELECT seq FROM stmtflow_outbox
            WHERE next_attempt_at IS NULL OR next_attempt_at <= %(now)s
            ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        ) RETURNING {_COLUMNS}""",
        {"until": now + lease, "now": now, "limit": limit},
    ).fetchall()
    return sorted((_message(row) for row in rows), key=lambda m: m.seq)


def sent(conn: psycopg.Connection[Any], seqs: Sequence[int]) -> None:
    conn.execute("DELETE FROM stmtflow_outbox WHERE seq = ANY(%s)", (list(seqs),))


def retry(
    conn: psycopg.Connection[Any], seqs: Sequence[int], retry_at: datetime, error: str | None
) -> None:
    """Due again at ``retry_at``; with ``error``, a failed delivery recorded too."""
    if error is None:
        conn.execute(
            "UPDATE stmtflow_outbox SET next_attempt_at = %s WHERE seq = ANY(%s)",
            (retry_at, list(seqs)),
        )
        return
    conn.execute(
        "UPDATE stmtflow_outbox SET attempts = attempts + 1, last_error = %s, "
        "next_attempt_at = %s WHERE seq = ANY(%s)",
        (error, retry_at, list(seqs)),
    )


def listing(conn: psycopg.Connection[Any], instance_id: str | None) -> list[OutboxMessage]:
    if instance_id is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM stmtflow_outbox ORDER BY seq").fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM stmtflow_outbox WHERE instance_id = %s ORDER BY seq",
            (instance_id,),
        ).fetchall()
    return [_message(row) for row in rows]

"""The SQLite store's outbox: the rows of ``stmtflow_outbox`` (`OutboxMessage`).

Inserted in the transaction of the instance write whose `Batch` carries them (the step's
checkpoint); claimed, deleted and marked failed by the engine's delivery.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from stmtflow.stores._outbox import OutboxMessage

__all__ = ["OUTBOX_SCHEMA", "any_due", "claim", "emit", "listing", "retry", "sent"]

OUTBOX_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS stmtflow_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    step TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at TEXT
)""",
    "CREATE INDEX IF NOT EXISTS stmtflow_outbox_due ON stmtflow_outbox (next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS stmtflow_outbox_instance ON stmtflow_outbox (instance_id, seq)",
)
"""Added by schema version 6 (`stmtflow.stores._sqlite_schema`). Rows outlive their instance
until delivered: a message committed is a message sent, whatever happens to the instance."""

_COLUMNS = (
    "seq, key, topic, payload, instance_id, thread_id, step, created_at, attempts, last_error, "
    "next_attempt_at"
)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _message(row: sqlite3.Row) -> OutboxMessage:
    return OutboxMessage(
        key=row["key"],
        topic=row["topic"],
        payload=row["payload"],
        instance_id=row["instance_id"],
        thread_id=row["thread_id"],
        step=row["step"],
        seq=row["seq"],
        created_at=datetime.fromisoformat(row["created_at"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt_at=_dt(row["next_attempt_at"]),
    )


def emit(conn: sqlite3.Connection, messages: Sequence[OutboxMessage], now: str) -> None:
    """Insert ``messages`` in the write's transaction (a known key is left as it is)."""
    conn.executemany(
        "INSERT OR IGNORE INTO stmtflow_outbox "
        "(key, topic, payload, instance_id, thread_id, step, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(m.key, m.topic, m.payload, m.instance_id, m.thread_id, m.step, now) for m in messages],
    )


def any_due(conn: sqlite3.Connection, now: datetime) -> bool:
    """Whether a row is due at ``now`` (a read: no write lock)."""
    row = conn.execute(
        "SELECT 1 FROM stmtflow_outbox WHERE next_attempt_at IS NULL OR next_attempt_at <= ? "
        "LIMIT 1",
        (_ts(now),),
    ).fetchone()
    return row is not None


def claim(
    conn: sqlite3.Connection, now: datetime, lease: timedelta, limit: int
) -> list[OutboxMessage]:
    """Claim due rows, oldest first (in a write transaction)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM stmtflow_outbox "
        "WHERE next_attempt_at IS NULL OR next_attempt_at <= ? ORDER BY seq LIMIT ?",
        (_ts(now), limit),
    ).fetchall()
    if rows:
        until = _ts(now + lease)
        conn.executemany(
            "UPDATE stmtflow_outbox SET next_attempt_at = ? WHERE seq = ?",
            [(until, row["seq"]) for row in rows],
        )
    return sorted((_message(row) for row in rows), key=lambda m: m.seq)


def sent(conn: sqlite3.Connection, seqs: Sequence[int]) -> None:
    conn.executemany("DELETE FROM stmtflow_outbox WHERE seq = ?", [(seq,) for seq in seqs])


def retry(
    conn: sqlite3.Connection, seqs: Sequence[int], retry_at: datetime, error: str | None
) -> None:
    """Due again at ``retry_at``; with ``error``, a failed delivery recorded too."""
    if error is None:
        conn.executemany(
            "UPDATE stmtflow_outbox SET next_attempt_at = ? WHERE seq = ?",
            [(_ts(retry_at), seq) for seq in seqs],
        )
        return
    conn.executemany(
        "UPDATE stmtflow_outbox SET attempts = attempts + 1, last_error = ?, "
        "next_attempt_at = ? WHERE seq = ?",
        [(error, _ts(retry_at), seq) for seq in seqs],
    )


def listing(conn: sqlite3.Connection, instance_id: str | None) -> list[OutboxMessage]:
    if instance_id is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM stmtflow_outbox ORDER BY seq").fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM stmtflow_outbox WHERE instance_id = ? ORDER BY seq",
            (instance_id,),
        ).fetchall()
    return [_message(row) for row in rows]

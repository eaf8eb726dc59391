"""The SQLite store's histories: ``stmtflow_history`` rows (each write's snapshot kept in its
last event's row), written in the transaction of the instance write whose `Batch` carries them,
and pruning in small transactions (`stmtflow.stores._history`).

A write with history costs one more page or two in its commit: the history's rightmost leaf,
where its rows (and the snapshot with them) go. What is past the caps is deleted every
`TRIM_EVERY` events, in the write that crosses the mark.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from datetime import datetime

from stmtflow.stores._history import HistoryEvent, HistoryWrite, Snapshot, numbered, trim_due

__all__ = ["SCHEMA", "append", "events", "prune", "snapshot"]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS stmtflow_history (
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    thread_id TEXT,
    name TEXT,
    attempt INTEGER,
    error TEXT,
    detail TEXT,
    snapshot INTEGER,
    data TEXT,
    state TEXT,
    PRIMARY KEY (id, seq)
) WITHOUT ROWID""",
    """CREATE TRIGGER IF NOT EXISTS stmtflow_history_deleted AFTER DELETE ON stmtflow_instances
BEGIN
    DELETE FROM stmtflow_history WHERE id = OLD.id;
END""",
)
"""Schema version 6's table (`stmtflow.stores._sqlite_schema`)."""

_INSERT = (
    "INSERT INTO stmtflow_history "
    "(id, seq, at, kind, thread_id, name, attempt, error, detail, snapshot, data, state) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def append(conn: sqlite3.Connection, id: str, write: HistoryWrite) -> None:
    """Append ``write`` to instance ``id``'s history, in the caller's transaction."""
    last = conn.execute("SELECT MAX(seq) FROM stmtflow_history WHERE id = ?", (id,)).fetchone()[0]
    last = last or 0
    new = numbered(write, last)
    top = new[-1].seq
    conn.executemany(
        _INSERT,
        [
            (
                id,
                e.seq,
                e.at.isoformat(timespec="microseconds"),
                e.kind,
                e.thread_id,
                e.name,
                e.attempt,
                e.error,
                None if e.detail is None else json.dumps(e.detail),
                e.snapshot,
                write.data if e.seq == top and write.snapshots else None,
                write.state if e.seq == top and write.snapshots else None,
            )
            for e in new
        ],
    )
    if trim_due(last, top):
        conn.execute(
            "DELETE FROM stmtflow_history WHERE id = ? AND seq <= ?", (id, top - write.limit)
        )
        conn.execute(
            "UPDATE stmtflow_history SET data = NULL, state = NULL "
            "WHERE id = ? AND seq <= ? AND data IS NOT NULL",
            (id, top - write.snapshots),
        )


def events(conn: sqlite3.Connection, id: str) -> tuple[builtins.list[HistoryEvent], int]:
    rows = conn.execute(
        "SELECT seq, at, kind, thread_id, name, attempt, error, detail, snapshot "
        "FROM stmtflow_history WHERE id = ? ORDER BY seq",
        (id,),
    ).fetchall()
    found = [
        HistoryEvent(
            seq=r[0],
            at=datetime.fromisoformat(r[1]),
            kind=r[2],
            thread_id=r[3],
            name=r[4],
            attempt=r[5],
            error=r[6],
            detail=None if r[7] is None else json.loads(r[7]),
            snapshot=r[8],
        )
        for r in rows
    ]
    return found, (found[0].seq - 1 if found else 0)


def snapshot(conn: sqlite3.Connection, id: str, seq: int) -> Snapshot | None:
    row = conn.execute(
        "SELECT data, state FROM stmtflow_history WHERE id = ? AND seq = ? AND data IS NOT NULL",
        (id, seq),
    ).fetchone()
    return None if row is None else Snapshot(seq, row[0], row[1])


_PRUNE = (
    "SELECT id FROM stmtflow_instances "
    "WHERE status IN ('finished', 'failed', 'cancelled') AND wake_at IS NULL "
    "AND updated_at < :before AND (lease_expires IS NULL OR lease_expires < :now) "
    "AND (:workflow IS NULL OR workflow = :workflow) ORDER BY updated_at LIMIT :limit"
)


def prune(
    conn: sqlite3.Connection, before: str, now: str, workflow: str | None, limit: int
) -> builtins.list[str]:
    """Delete up to ``limit`` ended instances (the caller's short transaction); their ids.
    Triggers delete their history, inbox, inputs and state parts."""
    params = {"before": before, "now": now, "workflow": workflow, "limit": limit}
    ids = [r[0] for r in conn.execute(_PRUNE, params).fetchall()]
    conn.executemany("DELETE FROM stmtflow_instances WHERE id = ?", [(i,) for i in ids])
    return ids

"""The SQLite store's histories, written in the transaction of the instance write whose `Batch`
carries them, and pruning in small transactions (`stmtflow.stores._history`).

What a commit costs on SQLite is the pages it writes (each one a WAL frame, fsync'd). A history
row in a table of its own would add a page to every commit, doubling W1's. So the newest events
wait in the instance's own row (``stmtflow_instances.history_tail``, a JSON object with the last
seq and up to `TAIL` events), on the page the write changes anyway, and move to
``stmtflow_history`` `TAIL` at a time; what is past the caps is deleted every `TRIM_EVERY`
events. A snapshot (``snapshots > 0``) is a row of ``stmtflow_snapshots`` per write: the page
it costs is the price of rewinding (docs/operations.md).
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from datetime import datetime
from typing import Any

from stmtflow.stores._history import HistoryEvent, HistoryWrite, Snapshot, numbered, trim_due

__all__ = ["SCHEMA", "TAIL", "append", "events", "prune", "snapshot"]

TAIL = 16
"""Events kept in the instance's row before they move to ``stmtflow_history``."""

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
    PRIMARY KEY (id, seq)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS stmtflow_snapshots (
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (id, seq)
) WITHOUT ROWID""",
    """CREATE TRIGGER IF NOT EXISTS stmtflow_history_deleted AFTER DELETE ON stmtflow_instances
BEGIN
    DELETE FROM stmtflow_history WHERE id = OLD.id;
    DELETE FROM stmtflow_snapshots WHERE id = OLD.id;
END""",
)
"""Schema version 7's tables (`stmtflow.stores._sqlite_schema`), beside the ``history_tail``
column of ``stmtflow_instances``."""

_INSERT = (
    "INSERT INTO stmtflow_history "
    "(id, seq, at, kind, thread_id, name, attempt, error, detail, snapshot) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _encode(e: HistoryEvent) -> list[Any]:
    at = e.at.isoformat(timespec="microseconds")
    return [e.seq, at, e.kind, e.thread_id, e.name, e.attempt, e.error, e.detail, e.snapshot]


def _decode(row: list[Any] | tuple[Any, ...], detail: Any) -> HistoryEvent:
    return HistoryEvent(
        seq=row[0],
        at=datetime.fromisoformat(row[1]),
        kind=row[2],
        thread_id=row[3],
        name=row[4],
        attempt=row[5],
        error=row[6],
        detail=detail,
        snapshot=row[8],
    )


def _tail(conn: sqlite3.Connection, id: str) -> tuple[int, builtins.list[list[Any]]]:
    """The instance's last seq and the events waiting in its row."""
    row = conn.execute("SELECT history_tail FROM stmtflow_instances WHERE id = ?", (id,)).fetchone()
    if row is not None and row[0]:
        tail = json.loads(row[0])
        return tail["last"], tail["events"]
    found = conn.execute("SELECT MAX(seq) FROM stmtflow_history WHERE id = ?", (id,)).fetchone()
    return found[0] or 0, []


def append(conn: sqlite3.Connection, id: str, write: HistoryWrite) -> None:
    """Append ``write`` to instance ``id``'s history, in the caller's transaction (after the
    write of the instance's row, whose page it changes again)."""
    last, pending = _tail(conn, id)
    new = numbered(write, last)
    top = new[-1].seq
    pending += [_encode(e) for e in new]
    if write.snapshots:
        conn.execute(
            "INSERT INTO stmtflow_snapshots (id, seq, data, state) VALUES (?, ?, ?, ?)",
            (id, top, write.data, write.state),
        )
    if len(pending) >= TAIL:
        conn.executemany(
            _INSERT,
            [(id, *r[:7], None if r[7] is None else json.dumps(r[7]), r[8]) for r in pending],
        )
        pending = []
    if trim_due(last, top):
        conn.execute(
            "DELETE FROM stmtflow_history WHERE id = ? AND seq <= ?", (id, top - write.limit)
        )
        conn.execute(
            "DELETE FROM stmtflow_snapshots WHERE id = ? AND seq <= ?", (id, top - write.snapshots)
        )
    conn.execute(
        "UPDATE stmtflow_instances SET history_tail = ? WHERE id = ?",
        (json.dumps({"last": top, "events": pending}), id),
    )


def events(conn: sqlite3.Connection, id: str) -> tuple[builtins.list[HistoryEvent], int]:
    conn.execute("BEGIN")  # the table's rows and the row's tail from one snapshot
    try:
        rows = conn.execute(
            "SELECT seq, at, kind, thread_id, name, attempt, error, detail, snapshot "
            "FROM stmtflow_history WHERE id = ? ORDER BY seq",
            (id,),
        ).fetchall()
        _, pending = _tail(conn, id)
    finally:
        conn.execute("COMMIT")
    found = [_decode(r, None if r[7] is None else json.loads(r[7])) for r in rows]
    found += [_decode(r, r[7]) for r in pending]
    return found, (found[0].seq - 1 if found else 0)


def snapshot(conn: sqlite3.Connection, id: str, seq: int) -> Snapshot | None:
    row = conn.execute(
        "SELECT data, state FROM stmtflow_snapshots WHERE id = ? AND seq = ?", (id, seq)
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
    Triggers delete their history, snapshots, inbox, inputs and state parts."""
    params = {"before": before, "now": now, "workflow": workflow, "limit": limit}
    ids = [r[0] for r in conn.execute(_PRUNE, params).fetchall()]
    conn.executemany("DELETE FROM stmtflow_instances WHERE id = ?", [(i,) for i in ids])
    return ids

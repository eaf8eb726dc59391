"""The SQLite store's histories, written in the transaction of the instance write whose `Batch`
carries them, and pruning in small transactions (`stmtflow.stores._history`).

What a commit costs on SQLite is the pages it writes (each one a WAL frame, fsync'd) and the
statements it runs. A history row in a table of its own would add a page to every commit,
doubling W1's. So the newest events wait in the instance's own row, on the page the write
changes anyway, and move to ``stmtflow_history`` `TAIL` at a time; what is past the caps is
deleted at the move that crosses a multiple of `TRIM_EVERY`. The row's history columns:

- ``history_tail``: the waiting events as JSON arrays, each written with a comma before it
  (``,[seq,at,kind,thread_id,name,attempt,error,detail,snapshot],...``), NULL when none wait;
- ``history_count``: how many wait; ``history_last``: the instance's last seq (NULL: not
  known in the row, read from the table); ``history_snap``: the seq of its latest snapshot.

Most writes append their events in the compare-and-set ``UPDATE`` itself (`inline`): text
joined to the tail and three integers, numbered from the stored last seq, so a step's write
stays one autocommit statement, as without history, and no JSON is parsed in SQL. Only a write
that would fill the tail (or finds no last seq) takes `append`'s transaction: read the tail,
move it, trim, write it back.

A snapshot (``snapshots > 0``) is a row of ``stmtflow_snapshots`` per write, inserted by a
trigger when a write moves ``history_last`` and sets ``history_snap`` to it
(``stmtflow_snapshot_taken``), from the row's new data and state, so it too is part of the one
statement; a state kept in parts (`stmtflow.stores._sqlite_parts`, whose row holds only the
head) is filed by `append` instead. The snapshots of an instance are a ring of
``snapshots`` slots (``history_ring``, the write's setting): the write whose last seq is ``s``
overwrites slot ``s % snapshots``, a row of about the same size in the same place, so a
commit writes the one page that holds it. Inserting a row per write and deleting the old ones
every 64 (schema 9) wrote two pages per commit: the table's index b-tree rebalances its last
leaves as it grows (SQLite's cheap append is for rowid tables only), and the pages the trim
freed were taken again from the free list, touching its pages and the file header. The ring
also keeps exactly ``snapshots`` per instance, instead of up to 64 more.

Schema version 9 kept the tail as one JSON object (``{"last": seq, "events": [...]}``) in
``history_tail`` and a snapshot row per write keyed by its seq; `UPGRADE` turns the tail into
version 10's columns and `upgrade_snapshots` the rows into slots of their own (``-seq``: read,
never overwritten, deleted by the trim once past the cap).
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from datetime import datetime
from typing import Any

from stmtflow.stores._history import HistoryEvent, HistoryWrite, Snapshot, numbered, trim_due

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "TAIL",
    "UPGRADE",
    "append",
    "events",
    "inline",
    "inline_params",
    "prune",
    "snapshot",
    "upgrade_snapshots",
]

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
    slot INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (id, slot)
) WITHOUT ROWID""",
    """CREATE TRIGGER IF NOT EXISTS stmtflow_history_deleted AFTER DELETE ON stmtflow_instances
BEGIN
    DELETE FROM stmtflow_history WHERE id = OLD.id;
    DELETE FROM stmtflow_snapshots WHERE id = OLD.id;
END""",
    # A write whose events file a snapshot sets history_snap to its new history_last: the data
    # and state it leaves are filed under that seq, in the same statement.
    """CREATE TRIGGER IF NOT EXISTS stmtflow_snapshot_taken
    AFTER UPDATE OF history_last ON stmtflow_instances
    WHEN NEW.state_parts = 0 AND NEW.history_snap = NEW.history_last
    AND OLD.history_last IS NOT NEW.history_last
BEGIN
    INSERT INTO stmtflow_snapshots (id, slot, seq, data, state)
    VALUES (NEW.id, NEW.history_last % NEW.history_ring, NEW.history_last, NEW.data, NEW.state)
    ON CONFLICT (id, slot) DO UPDATE
    SET seq = excluded.seq, data = excluded.data, state = excluded.state;
END""",
)
"""The histories' tables (`stmtflow.stores._sqlite_schema`), beside the history columns of
``stmtflow_instances`` (`COLUMNS`): version 7 added the tables, version 10 the trigger."""

COLUMNS = (
    ("history_tail", "TEXT"),
    ("history_count", "INTEGER NOT NULL DEFAULT 0"),
    ("history_last", "INTEGER"),
    ("history_snap", "INTEGER"),
    ("history_ring", "INTEGER"),
)
"""The history columns of ``stmtflow_instances`` and their types (``history_tail`` since
version 7, the others since version 10)."""

_FILE = (
    "INSERT INTO stmtflow_snapshots (id, slot, seq, data, state) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (id, slot) DO UPDATE "
    "SET seq = excluded.seq, data = excluded.data, state = excluded.state"
)


def upgrade_snapshots(conn: sqlite3.Connection) -> None:
    """Give version 9's snapshot rows (keyed by seq) slots of their own (``-seq``), before the
    history schema is created (in `set_up`'s transaction)."""
    columns = {r[1] for r in conn.execute("PRAGMA table_info(stmtflow_snapshots)")}
    if not columns or "slot" in columns:
        return
    # The delete trigger names the table: dropped here, created again with the schema.
    conn.execute("DROP TRIGGER IF EXISTS stmtflow_history_deleted")
    conn.execute("ALTER TABLE stmtflow_snapshots RENAME TO stmtflow_snapshots_v9")
    conn.execute(SCHEMA[1])
    conn.execute(
        "INSERT INTO stmtflow_snapshots (id, slot, seq, data, state) "
        "SELECT id, -seq, seq, data, state FROM stmtflow_snapshots_v9"
    )
    conn.execute("DROP TABLE stmtflow_snapshots_v9")


UPGRADE = """UPDATE stmtflow_instances SET
    history_last = json_extract(history_tail, '$.last'),
    history_count = json_array_length(history_tail, '$.events'),
    history_tail = CASE WHEN json_array_length(history_tail, '$.events') > 0
        THEN ',' || substr(json_extract(history_tail, '$.events'), 2,
                           length(json_extract(history_tail, '$.events')) - 2) END
WHERE history_tail LIKE '{%'"""
"""Turns version 9's tail (one JSON object) into version 10's columns (run before the trigger
exists)."""


def inline(sql: str, count: int, snapshots: int) -> str:
    """A compare-and-set ``UPDATE ... WHERE ... RETURNING`` that also appends ``count`` events
    to the row's tail, or changes nothing when the row knows no last seq or the tail would
    fill (then the write is made by `append` instead).

    Parameters ``h1`` ... ``hN``: `inline_params`. Each event is numbered from the stored last
    seq and points to the write's snapshot (its last event) when ``snapshots`` (the ring's
    size) is not 0; no JSON is parsed in SQL."""
    top = f"history_last + {count}"
    pointer = f"({top})" if snapshots else "'null'"
    entries = " || ".join(
        f"',[' || (history_last + {i}) || ',' || :h{i} || ',' || {pointer} || ']'"
        for i in range(1, count + 1)
    )
    sets = (
        f"history_tail = coalesce(history_tail, '') || {entries}, "
        f"history_count = history_count + {count}, history_last = {top}, "
        f"history_snap = {top if snapshots else 'NULL'}"
        + (f", history_ring = {int(snapshots)}" if snapshots else "")
    )
    room = f"history_last IS NOT NULL AND history_count < {TAIL - count}"
    head, where = sql.split(" WHERE ", 1)
    cond, returning = where.split(" RETURNING ", 1)
    return f"{head}, {sets} WHERE {cond} AND {room} RETURNING {returning}"


def inline_params(write: HistoryWrite) -> dict[str, str]:
    """`inline`'s parameters: each event's fields between its seq and its snapshot pointer, as
    JSON array items."""
    return {f"h{i}": _json(_encode(e)[1:-1])[1:-1] for i, e in enumerate(write.events, 1)}


_json = json.JSONEncoder(separators=(",", ":")).encode
"""Compact JSON, as the tail keeps it."""

_INSERT = (
    "INSERT INTO stmtflow_history "
    "(id, seq, at, kind, thread_id, name, attempt, error, detail, snapshot) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _encode(e: HistoryEvent) -> list[Any]:
    """An event as the tail keeps it (seq, at, kind, thread_id, name, attempt, error, detail,
    snapshot)."""
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
    row = conn.execute(
        "SELECT history_last, history_tail FROM stmtflow_instances WHERE id = ?", (id,)
    ).fetchone()
    if row is not None and row[0] is not None:
        return row[0], json.loads(f"[{row[1][1:]}]") if row[1] else []
    found = conn.execute("SELECT MAX(seq) FROM stmtflow_history WHERE id = ?", (id,)).fetchone()
    return found[0] or 0, []


def append(conn: sqlite3.Connection, id: str, write: HistoryWrite, *, whole: bool = True) -> None:
    """Append ``write`` to instance ``id``'s history, in the caller's transaction (after the
    write of the instance's row, whose page it changes again). ``whole``: the row holds the
    whole state, and the trigger files the snapshot; else (a state in parts) it is filed here."""
    last, pending = _tail(conn, id)
    new = numbered(write, last)
    top = new[-1].seq
    first = last - len(pending)  # the last seq already in the table
    pending += [_encode(e) for e in new]
    ring = write.snapshots or None
    if ring and not whole:
        conn.execute(_FILE, (id, top % ring, top, write.data, write.state))
    if len(pending) >= TAIL:
        conn.executemany(
            _INSERT,
            [(id, *r[:7], None if r[7] is None else json.dumps(r[7]), r[8]) for r in pending],
        )
        pending = []
        if trim_due(first, top):  # the events since the last move crossed a mark
            conn.execute(
                "DELETE FROM stmtflow_history WHERE id = ? AND seq <= ?", (id, top - write.limit)
            )
            conn.execute(  # version 9's rows (the ring keeps itself)
                "DELETE FROM stmtflow_snapshots WHERE id = ? AND slot < 0 AND seq <= ?",
                (id, top - write.snapshots),
            )
    tail = "".join(f",{_json(e)}" for e in pending) or None
    conn.execute(
        "UPDATE stmtflow_instances SET history_tail = ?, history_count = ?, history_last = ?, "
        "history_snap = ?, history_ring = coalesce(?, history_ring) WHERE id = ?",
        (tail, len(pending), top, top if ring else None, ring, id),
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

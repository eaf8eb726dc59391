"""The PostgreSQL store's histories: ``stmtflow_history`` rows (each write's snapshot kept in
its last event's row), written by the statement of the instance write whose `Batch` carries
them (`folded`: the instance's row is locked by that write, so two writes of one instance
number their events in turn), and pruning in small transactions (`stmtflow.stores._history`).
What is past the caps is deleted every `TRIM_EVERY` events.

The instance's last seq is kept in its row (``stmtflow_instances.history_last``, set by the
write itself: `counted`), so a write numbers its events without probing the history table; a
row written before schema version 8 (NULL there) is counted from the table once. The table has
no foreign key to the instances (its check read the instance row again for every event row
inserted): `prune`, the one way instances are deleted, deletes their history with them."""

from __future__ import annotations

import builtins
import functools
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from stmtflow.stores._history import TRIM_EVERY, HistoryEvent, HistoryWrite, Snapshot

__all__ = ["SCHEMA", "counted", "events", "folded", "prune", "snapshot"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS stmtflow_history (
    id text NOT NULL,
    seq bigint NOT NULL,
    at timestamptz NOT NULL,
    kind text NOT NULL,
    thread_id text,
    name text,
    attempt integer,
    error text,
    detail jsonb,
    snapshot bigint,
    data text,
    state text,
    PRIMARY KEY (id, seq)
);
ALTER TABLE stmtflow_history DROP CONSTRAINT IF EXISTS stmtflow_history_id_fkey;
ALTER TABLE stmtflow_instances ADD COLUMN IF NOT EXISTS history_last bigint;
"""
"""The histories' table and column (`stmtflow.stores._postgres_schema`): version 5 added the
table (with a foreign key to the instances, dropped by version 8), version 8 the row's last
seq."""

_LAST = (
    "history_last = coalesce(history_last, (SELECT max(seq) FROM stmtflow_history "
    "WHERE id = %(id)s), 0) + %(h_count)s"
)


@functools.cache
def counted(query: str) -> str:
    """A compare-and-set ``UPDATE ... RETURNING`` that also moves the row's last seq on by the
    write's events and returns it (for `folded`'s numbering)."""
    head, where = query.split(" WHERE ", 1)
    return f"{head}, {_LAST} WHERE {where}, history_last"


_WITH = """
h_last AS (SELECT history_last - %(h_count)s AS n FROM w),
h_new AS (
    INSERT INTO stmtflow_history
        (id, seq, at, kind, thread_id, name, attempt, error, detail, snapshot, data, state)
    SELECT %(id)s, h_last.n + e.n, e.at, e.kind, e.thread_id, e.name, e.attempt, e.error,
        e.detail,
        CASE WHEN %(h_snapshots)s > 0 THEN h_last.n + %(h_count)s END,
        CASE WHEN %(h_snapshots)s > 0 AND e.n = %(h_count)s THEN %(h_data)s END,
        CASE WHEN %(h_snapshots)s > 0 AND e.n = %(h_count)s THEN %(h_state)s END
    FROM w, h_last, jsonb_to_recordset(%(h_events)s) AS e(
        n integer, at timestamptz, kind text, thread_id text, name text, attempt integer,
        error text, detail jsonb)
),
h_due AS (
    SELECT n + %(h_count)s AS top FROM h_last, w
    WHERE n / %(h_every)s <> (n + %(h_count)s) / %(h_every)s
),
h_cut AS (
    DELETE FROM stmtflow_history
    WHERE id = %(id)s AND seq <= (SELECT top FROM h_due) - %(h_limit)s
),
h_thin AS (
    UPDATE stmtflow_history SET data = NULL, state = NULL
    WHERE id = %(id)s AND data IS NOT NULL
    AND seq > (SELECT top FROM h_due) - %(h_limit)s
    AND seq <= (SELECT top FROM h_due) - %(h_snapshots)s
)"""
"""The history part of a write's one statement (`folded`): numbered on from the instance's last
seq (the write ``w``, `counted`, returned it moved on), appended only if ``w`` returned its
row, and the trimming when due. ``h_cut`` and ``h_thin`` touch disjoint rows (one statement
must not change a row twice); their bounds are scalar subqueries, null when no trim is due, so
the index scan reads no row at all (a join with ``h_due`` would read every kept row of the
instance on every write)."""


def folded(write: HistoryWrite) -> tuple[str, dict[str, Any]]:
    """The ``WITH`` items (after a write ``w``) appending ``write``, and their parameters.

    One statement instead of a transaction of five round trips (begin, write, read the last
    seq, insert, commit): what a write costs on PostgreSQL is mostly its round trips. A refused
    write returns no row, so nothing is appended; two writes of one instance are ordered by the
    row lock the write takes, and the second sees the first's events (it starts after the
    first committed: its expected version is the first's result).
    """
    events = [
        {
            key: value
            for key, value in {
                "n": i,
                "at": e.at.isoformat(),
                "kind": e.kind,
                "thread_id": e.thread_id,
                "name": e.name,
                "attempt": e.attempt,
                "error": e.error,
                "detail": e.detail,
            }.items()
            if value is not None
        }
        for i, e in enumerate(write.events, 1)
    ]
    params = {
        "h_events": Jsonb(events),
        "h_count": len(events),
        "h_limit": write.limit,
        "h_snapshots": write.snapshots,
        "h_every": TRIM_EVERY,
        "h_data": write.data,
        "h_state": write.state,
    }
    return _WITH, params


def events(conn: psycopg.Connection[Any], id: str) -> tuple[builtins.list[HistoryEvent], int]:
    rows = conn.execute(
        "SELECT seq, at, kind, thread_id, name, attempt, error, detail, snapshot "
        "FROM stmtflow_history WHERE id = %s ORDER BY seq",
        (id,),
    ).fetchall()
    found = [
        HistoryEvent(
            seq=r[0],
            at=r[1].astimezone(UTC),
            kind=r[2],
            thread_id=r[3],
            name=r[4],
            attempt=r[5],
            error=r[6],
            detail=r[7],
            snapshot=r[8],
        )
        for r in rows
    ]
    return found, (found[0].seq - 1 if found else 0)


def snapshot(conn: psycopg.Connection[Any], id: str, seq: int) -> Snapshot | None:
    row = conn.execute(
        "SELECT data, state FROM stmtflow_history WHERE id = %s AND seq = %s AND data IS NOT NULL",
        (id, seq),
    ).fetchone()
    return None if row is None else Snapshot(seq, row[0], row[1])


_PRUNE = """
DELETE FROM stmtflow_instances WHERE id IN (
    SELECT id FROM stmtflow_instances
    WHERE status IN ('finished', 'failed', 'cancelled') AND wake_at IS NULL
    AND updated_at < %(before)s AND (lease_expires IS NULL OR lease_expires < %(now)s)
    AND (%(workflow)s::text IS NULL OR workflow = %(workflow)s)
    ORDER BY updated_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
) RETURNING id
"""


def prune(
    conn: psycopg.Connection[Any],
    before: datetime,
    now: datetime,
    workflow: str | None,
    limit: int,
) -> builtins.list[str]:
    """Delete up to ``limit`` ended instances in the caller's transaction; their ids. Their
    inputs go by cascade, their history and inbox here."""
    params = {"before": before, "now": now, "workflow": workflow, "limit": limit}
    ids = [r[0] for r in conn.execute(_PRUNE, params).fetchall()]
    if ids:
        conn.execute("DELETE FROM stmtflow_history WHERE id = ANY(%s)", (ids,))
        conn.execute("DELETE FROM stmtflow_inbox WHERE instance_id = ANY(%s)", (ids,))
    return ids

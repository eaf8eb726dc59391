"""The PostgreSQL store's histories: ``stmtflow_history`` rows (each write's snapshot kept in
its last event's row), written in the transaction of the instance write whose `Batch` carries
them (the instance's row is locked by that write, so two writes of one instance number their
events in turn), and pruning in small transactions (`stmtflow.stores._history`). What is past
the caps is deleted every `TRIM_EVERY` events."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from stmtflow.stores._history import HistoryEvent, HistoryWrite, Snapshot, numbered, trim_due

__all__ = ["SCHEMA", "append", "events", "prune", "snapshot"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS stmtflow_history (
    id text NOT NULL REFERENCES stmtflow_instances (id) ON DELETE CASCADE,
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
"""
"""Schema version 5's table (`stmtflow.stores._postgres_schema`)."""

_INSERT = (
    "INSERT INTO stmtflow_history "
    "(id, seq, at, kind, thread_id, name, attempt, error, detail, snapshot, data, state) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def append(conn: psycopg.Connection[Any], id: str, write: HistoryWrite) -> None:
    """Append ``write`` to instance ``id``'s history, in the caller's transaction."""
    row = conn.execute("SELECT max(seq) FROM stmtflow_history WHERE id = %s", (id,)).fetchone()
    last = (row[0] if row else None) or 0
    new = numbered(write, last)
    top = new[-1].seq
    with conn.cursor() as cur:
        cur.executemany(
            _INSERT,
            [
                (
                    id,
                    e.seq,
                    e.at,
                    e.kind,
                    e.thread_id,
                    e.name,
                    e.attempt,
                    e.error,
                    None if e.detail is None else Jsonb(e.detail),
                    e.snapshot,
                    write.data if e.seq == top and write.snapshots else None,
                    write.state if e.seq == top and write.snapshots else None,
                )
                for e in new
            ],
        )
    if trim_due(last, top):
        conn.execute(
            "DELETE FROM stmtflow_history WHERE id = %s AND seq <= %s", (id, top - write.limit)
        )
        conn.execute(
            "UPDATE stmtflow_history SET data = NULL, state = NULL "
            "WHERE id = %s AND seq <= %s AND data IS NOT NULL",
            (id, top - write.snapshots),
        )


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
    history and inputs go by cascade, their inbox here."""
    params = {"before": before, "now": now, "workflow": workflow, "limit": limit}
    ids = [r[0] for r in conn.execute(_PRUNE, params).fetchall()]
    if ids:
        conn.execute("DELETE FROM stmtflow_inbox WHERE instance_id = ANY(%s)", (ids,))
    return ids

"""The SQLite store's tables, and bringing an older file's up to date.

`SCHEMA_VERSION` is kept in ``stmtflow_meta``; `set_up` creates what is missing and upgrades
older files in one ``BEGIN IMMEDIATE`` transaction, so processes opening a file together do
not race.
"""

from __future__ import annotations

import sqlite3

from stmtflow.errors import StmtflowError
from stmtflow.stores._sqlite_history import COLUMNS as _HISTORY_COLUMNS
from stmtflow.stores._sqlite_history import SCHEMA as _HISTORY_SCHEMA
from stmtflow.stores._sqlite_history import UPGRADE as _HISTORY_UPGRADE
from stmtflow.stores._sqlite_history import upgrade_snapshots
from stmtflow.stores._sqlite_outbox import OUTBOX_SCHEMA
from stmtflow.stores._sqlite_parts import TAIL
from stmtflow.stores._sqlite_schedules import SCHEDULES_SCHEMA

__all__ = ["SCHEMA_VERSION", "set_up"]

SCHEMA_VERSION = 10
"""The schema this release creates and reads (kept in ``stmtflow_meta``). Version 1 had no
state parts (`stmtflow.stores._sqlite_parts`); version 2 kept each thread's part without its
first characters (``,{"id":"``, which the state dump starts every thread but the first with);
version 3 had no parents (``parent_id``, ``root_id``, ``parent_event``, ``on_parent_end``) and
no inboxes (``stmtflow_inbox``), which version 4 added; version 5 added the pending-input index
(``stmtflow_inputs``); version 6 added the outbox (``stmtflow_outbox``,
`stmtflow.stores._sqlite_outbox`); version 7 the histories (``stmtflow_history``,
``stmtflow_snapshots`` and the ``history_tail`` column: `stmtflow.stores._sqlite_history`).
Version 8 added schedules (``stmtflow_schedules``); version 9 the locks (``stmtflow_locks``);
version 10 keeps the row's waiting history events as text with their count, the last seq and
the latest snapshot's seq in columns of their own (``history_count``, ``history_last``,
``history_snap``; version 9 kept one JSON object in ``history_tail``), files a write's
snapshot by trigger (``stmtflow_snapshot_taken``), so that a write appending events is one
statement, and keeps the snapshots in a ring of slots (``stmtflow_snapshots.slot``,
``history_ring``; version 9 added a row per write and deleted the old ones). Each addition is
created if missing whatever the version it upgrades from; opening an older file brings it up
to date."""

_META = "CREATE TABLE IF NOT EXISTS stmtflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS stmtflow_instances (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    data TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    wake_at TEXT,
    lease_owner TEXT,
    lease_expires TEXT,
    fence INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    state_parts INTEGER NOT NULL DEFAULT 0,
    parent_id TEXT,
    root_id TEXT,
    parent_event TEXT,
    on_parent_end TEXT,
    """
    + ",\n    ".join(f"{column} {kind}" for column, kind in _HISTORY_COLUMNS)
    + "\n)",
    """CREATE INDEX IF NOT EXISTS stmtflow_instances_due
    ON stmtflow_instances (wake_at) WHERE wake_at IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS stmtflow_instances_resuming
    ON stmtflow_instances (created_at) WHERE status = 'resuming'""",
    """CREATE INDEX IF NOT EXISTS stmtflow_instances_status
    ON stmtflow_instances (status, created_at, id)""",
    "CREATE INDEX IF NOT EXISTS stmtflow_instances_created ON stmtflow_instances (created_at, id)",
    "CREATE TABLE IF NOT EXISTS stmtflow_targets (workflow TEXT PRIMARY KEY, target TEXT NOT NULL)",
)

_PARTS_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS stmtflow_state_parts (
    id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (id, pos)
) WITHOUT ROWID""",
    # A state written whole again, or a record deleted, leaves no parts behind.
    """CREATE TRIGGER IF NOT EXISTS stmtflow_state_parts_whole
    AFTER UPDATE OF state_parts ON stmtflow_instances
    WHEN NEW.state_parts = 0 AND OLD.state_parts > 0
BEGIN
    DELETE FROM stmtflow_state_parts WHERE id = NEW.id;
END""",
    """CREATE TRIGGER IF NOT EXISTS stmtflow_state_parts_deleted
    AFTER DELETE ON stmtflow_instances WHEN OLD.state_parts > 0
BEGIN
    DELETE FROM stmtflow_state_parts WHERE id = OLD.id;
END""",
)

_PARENT_COLUMNS = ("parent_id", "root_id", "parent_event", "on_parent_end")
"""The columns version 4 added to ``stmtflow_instances`` (all TEXT, NULL for a root)."""

_FAMILY_SCHEMA = (
    """CREATE INDEX IF NOT EXISTS stmtflow_instances_parent
    ON stmtflow_instances (parent_id, created_at, id) WHERE parent_id IS NOT NULL""",
    """CREATE TABLE IF NOT EXISTS stmtflow_inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    event TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    pc INTEGER NOT NULL,
    input TEXT NOT NULL,
    key TEXT,
    buffered INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
)""",
    """CREATE UNIQUE INDEX IF NOT EXISTS stmtflow_inbox_key
    ON stmtflow_inbox (instance_id, key) WHERE key IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS stmtflow_inbox_pending
    ON stmtflow_inbox (instance_id, seq) WHERE status != 'done'""",
    """CREATE INDEX IF NOT EXISTS stmtflow_inbox_new
    ON stmtflow_inbox (instance_id) WHERE status = 'new'""",
    """CREATE TRIGGER IF NOT EXISTS stmtflow_inbox_deleted
    AFTER DELETE ON stmtflow_instances
BEGIN
    DELETE FROM stmtflow_inbox WHERE instance_id = OLD.id;
END""",
)

_INPUTS_SCHEMA = (
    # One row per person-facing event of a waiting instance (stmtflow.stores._inputs), written
    # with the instance's state; engine.inputs() reads these rows, never the states.
    """CREATE TABLE IF NOT EXISTS stmtflow_inputs (
    instance_id TEXT NOT NULL,
    event TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    assignee TEXT,
    input_schema TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    deadline TEXT,
    workflow TEXT NOT NULL,
    PRIMARY KEY (instance_id, thread_id, event)
) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS stmtflow_inputs_asked ON stmtflow_inputs (asked_at)",
    """CREATE INDEX IF NOT EXISTS stmtflow_inputs_assignee
    ON stmtflow_inputs (assignee, asked_at) WHERE assignee IS NOT NULL""",
    "CREATE INDEX IF NOT EXISTS stmtflow_inputs_workflow ON stmtflow_inputs (workflow, asked_at)",
    """CREATE TRIGGER IF NOT EXISTS stmtflow_inputs_deleted AFTER DELETE ON stmtflow_instances
BEGIN
    DELETE FROM stmtflow_inputs WHERE instance_id = OLD.id;
END""",
)

_LOCKS_SCHEMA = (
    # One row per thread waiting at or holding a Lock (stmtflow.stores._locks), written with
    # the instance's state; granted in arrival order (seq) per key in that same transaction.
    """CREATE TABLE IF NOT EXISTS stmtflow_locks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    lock_key TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    name TEXT NOT NULL,
    slots INTEGER NOT NULL,
    granted INTEGER NOT NULL,
    UNIQUE (instance_id, thread_id, name)
)""",
    "CREATE INDEX IF NOT EXISTS stmtflow_locks_key ON stmtflow_locks (lock_key, seq)",
)

_V2_PARTS = f"""UPDATE stmtflow_state_parts SET text = ',{{"id":"' || text WHERE pos < {TAIL}"""
"""Brings version 2's thread rows to version 3's: each holds its whole piece of the state."""


def set_up(conn: sqlite3.Connection, path: str) -> None:
    """Create the schema in the file at ``path``, or bring an older file's up to date (one
    transaction); a file newer than `SCHEMA_VERSION` is a `StmtflowError`. ``conn`` reads rows
    as `sqlite3.Row`."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_META)
        row = conn.execute(
            "SELECT value FROM stmtflow_meta WHERE key = 'schema_version'"
        ).fetchone()
        found = None if row is None else int(row["value"])
        if found is not None and found > SCHEMA_VERSION:
            raise StmtflowError(
                f"the SQLite store {path!r} has schema version {found}, newer than this "
                f"release of stmtflow supports ({SCHEMA_VERSION}); upgrade stmtflow"
            )
        for statement in _SCHEMA:
            conn.execute(statement)
        columns = {r["name"] for r in conn.execute("PRAGMA table_info(stmtflow_instances)")}
        if "state_parts" not in columns:  # a version 1 file
            conn.execute(
                "ALTER TABLE stmtflow_instances ADD COLUMN state_parts INTEGER NOT NULL DEFAULT 0"
            )
        for statement in (*_PARTS_SCHEMA, *_INPUTS_SCHEMA):
            conn.execute(statement)
        if found == 2:
            conn.execute(_V2_PARTS)
        for column in _PARENT_COLUMNS:
            if column not in columns:  # a file older than version 4
                conn.execute(f"ALTER TABLE stmtflow_instances ADD COLUMN {column} TEXT")
        for column, kind in _HISTORY_COLUMNS:  # a file older than version 7 (or 10)
            if column not in columns:
                conn.execute(f"ALTER TABLE stmtflow_instances ADD COLUMN {column} {kind}")
        if "history_last" not in columns:  # version 9's tails, in the row's new columns
            conn.execute(_HISTORY_UPGRADE)
        upgrade_snapshots(conn)
        for statement in (
            *_FAMILY_SCHEMA,
            *OUTBOX_SCHEMA,
            *_HISTORY_SCHEMA,
            *SCHEDULES_SCHEMA,
            *_LOCKS_SCHEMA,
        ):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO stmtflow_meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

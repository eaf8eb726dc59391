"""The PostgreSQL store's tables, and bringing an older database's up to date.

`SCHEMA_VERSION` is kept in ``stmtflow_meta``; `set_up` creates what is missing and upgrades an
older schema in one transaction under an advisory lock, so processes starting together do not
race.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from stmtflow.errors import StmtflowError
from stmtflow.stores._postgres_history import SCHEMA as _HISTORY_SCHEMA
from stmtflow.stores._postgres_outbox import OUTBOX_SCHEMA
from stmtflow.stores._postgres_schedules import SCHEDULES_SCHEMA

__all__ = ["SCHEMA_VERSION", "set_up"]

SCHEMA_VERSION = 8
"""The schema this release creates and reads (kept in ``stmtflow_meta``). Version 1 had no
parents (``parent_id``, ``root_id``, ``parent_event``, ``on_parent_end``) and no inboxes
(``stmtflow_inbox``), which version 2 added; version 3 added the pending-input index
(``stmtflow_inputs``); version 4 added the outbox (``stmtflow_outbox``,
`stmtflow.stores._postgres_outbox`); version 5 the histories (``stmtflow_history``:
`stmtflow.stores._postgres_history`). Each addition is created if missing whatever version a
database is brought up from; version 6 added schedules (``stmtflow_schedules``); version 7 the
lock index (``stmtflow_locks``: `stmtflow.stores._locks`); version 8 keeps an instance's last
history seq in its row (``history_last``) and drops the history table's foreign key."""

_SETUP_LOCK = 0x73746D74666C6F77  # "stmtflow": serialises schema creation across processes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stmtflow_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS stmtflow_instances (
    id text PRIMARY KEY,
    workflow text NOT NULL,
    data text NOT NULL,
    state text NOT NULL,
    status text NOT NULL,
    version bigint NOT NULL,
    wake_at timestamptz,
    lease_owner text,
    lease_expires timestamptz,
    fence bigint NOT NULL DEFAULT 0,
    error text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS stmtflow_instances_due
    ON stmtflow_instances (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS stmtflow_instances_resuming
    ON stmtflow_instances (created_at) WHERE status = 'resuming';
CREATE INDEX IF NOT EXISTS stmtflow_instances_status
    ON stmtflow_instances (status, created_at, id);
CREATE INDEX IF NOT EXISTS stmtflow_instances_created ON stmtflow_instances (created_at, id);
CREATE TABLE IF NOT EXISTS stmtflow_targets (workflow text PRIMARY KEY, target text NOT NULL);
CREATE TABLE IF NOT EXISTS stmtflow_inputs (
    instance_id text NOT NULL REFERENCES stmtflow_instances (id) ON DELETE CASCADE,
    event text NOT NULL,
    thread_id text NOT NULL,
    prompt text NOT NULL,
    assignee text,
    input_schema text NOT NULL,
    asked_at timestamptz NOT NULL,
    deadline timestamptz,
    workflow text NOT NULL,
    PRIMARY KEY (instance_id, thread_id, event)
);
CREATE INDEX IF NOT EXISTS stmtflow_inputs_asked ON stmtflow_inputs (asked_at);
CREATE INDEX IF NOT EXISTS stmtflow_inputs_assignee
    ON stmtflow_inputs (assignee, asked_at) WHERE assignee IS NOT NULL;
CREATE INDEX IF NOT EXISTS stmtflow_inputs_workflow ON stmtflow_inputs (workflow, asked_at);
"""

_V2 = """
ALTER TABLE stmtflow_instances ADD COLUMN IF NOT EXISTS parent_id text;
ALTER TABLE stmtflow_instances ADD COLUMN IF NOT EXISTS root_id text;
ALTER TABLE stmtflow_instances ADD COLUMN IF NOT EXISTS parent_event text;
ALTER TABLE stmtflow_instances ADD COLUMN IF NOT EXISTS on_parent_end text;
CREATE INDEX IF NOT EXISTS stmtflow_instances_parent
    ON stmtflow_instances (parent_id, created_at, id) WHERE parent_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS stmtflow_inbox (
    seq bigserial PRIMARY KEY,
    instance_id text NOT NULL,
    kind text NOT NULL,
    event text NOT NULL,
    thread_id text NOT NULL,
    pc bigint NOT NULL,
    input text NOT NULL,
    key text,
    buffered boolean NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS stmtflow_inbox_key
    ON stmtflow_inbox (instance_id, key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS stmtflow_inbox_pending
    ON stmtflow_inbox (instance_id, seq) WHERE status <> 'done';
CREATE INDEX IF NOT EXISTS stmtflow_inbox_new ON stmtflow_inbox (instance_id) WHERE status = 'new';
ALTER TABLE stmtflow_inbox
    SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
"""

_LOCKS = """
CREATE TABLE IF NOT EXISTS stmtflow_locks (
    seq bigserial PRIMARY KEY,
    lock_key text NOT NULL,
    instance_id text NOT NULL,
    thread_id text NOT NULL,
    name text NOT NULL,
    slots integer NOT NULL,
    granted smallint NOT NULL,
    UNIQUE (instance_id, thread_id, name)
);
CREATE INDEX IF NOT EXISTS stmtflow_locks_key ON stmtflow_locks (lock_key, seq);
"""


def set_up(conn: psycopg.Connection[Any], schema: str | None, url: str) -> None:
    """Create the schema (in ``schema``, made if missing), or bring an older one up to date; a
    database newer than `SCHEMA_VERSION` is a `StmtflowError` naming ``url``."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
        if schema is not None:
            ident = sql.Identifier(schema)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(ident))
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        row = conn.execute(
            "SELECT value FROM stmtflow_meta WHERE key = 'schema_version'"
        ).fetchone()
        found = None if row is None else int(row[0])
        if found is not None and found > SCHEMA_VERSION:
            raise StmtflowError(
                f"the PostgreSQL store {url} has schema version {found}, newer than "
                f"this release of stmtflow supports ({SCHEMA_VERSION}); upgrade stmtflow"
            )
        if found == SCHEMA_VERSION:
            return
        # A new database, or an older one: add what version 2 added (each addition is IF NOT
        # EXISTS, so a setup interrupted halfway is completed; version 3's table is above).
        for statement in (
            *_V2.split(";"),
            *OUTBOX_SCHEMA.split(";"),
            *_HISTORY_SCHEMA.split(";"),
            *SCHEDULES_SCHEMA.split(";"),
            *_LOCKS.split(";"),
        ):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT INTO stmtflow_meta (key, value) VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (str(SCHEMA_VERSION),),
        )

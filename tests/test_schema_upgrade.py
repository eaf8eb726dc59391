"""Databases an earlier release wrote are brought up to date when opened: an SQLite schema 3 file
and a PostgreSQL schema 1 database gain parents and inboxes (and every later addition), their
instances readable and runnable."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import stmtflow as sf
from stmtflow.runtime import Engine
from stmtflow.stores import SQLiteStore, open_store
from stmtflow.stores._postgres_schema import SCHEMA_VERSION as POSTGRES_VERSION
from stmtflow.stores._sqlite_schema import SCHEMA_VERSION as SQLITE_VERSION

SQLITE_V3 = """
CREATE TABLE stmtflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO stmtflow_meta VALUES ('schema_version', '3');
CREATE TABLE stmtflow_instances (
    id TEXT PRIMARY KEY, workflow TEXT NOT NULL, data TEXT NOT NULL, state TEXT NOT NULL,
    status TEXT NOT NULL, version INTEGER NOT NULL, wake_at TEXT, lease_owner TEXT,
    lease_expires TEXT, fence INTEGER NOT NULL DEFAULT 0, error TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    state_parts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE stmtflow_targets (workflow TEXT PRIMARY KEY, target TEXT NOT NULL);
CREATE TABLE stmtflow_state_parts (
    id TEXT NOT NULL, pos INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (id, pos)
) WITHOUT ROWID;
"""

POSTGRES_V1 = """
CREATE TABLE stmtflow_meta (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO stmtflow_meta VALUES ('schema_version', '1');
CREATE TABLE stmtflow_instances (
    id text PRIMARY KEY, workflow text NOT NULL, data text NOT NULL, state text NOT NULL,
    status text NOT NULL, version bigint NOT NULL, wake_at timestamptz, lease_owner text,
    lease_expires timestamptz, fence bigint NOT NULL DEFAULT 0, error text,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE stmtflow_targets (workflow text PRIMARY KEY, target text NOT NULL);
"""


class Payment(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("charge", print))


class Order(sf.WorkflowState):
    outcome: str = ""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Wait("ready", sf.OnEvent("go", lambda: None)),
            sf.Call("pay", Payment, result=self.paid),
        )

    def paid(self, result: sf.ChildResult) -> None:
        self.outcome = result.status


def _waiting_order() -> tuple[str, str]:
    wf, state = Order(), sf.new_state("old", "Order")
    sf.resume(wf, state)
    return wf.model_dump_json(), state.model_dump_json()


def _carries_on(url: str) -> None:
    with Engine(url, workflows=[Order, Payment]) as engine:
        old = engine.get("old")
        assert (old.parent_id, old.root_id, old.status.value) == (None, "old", "waiting")
        engine.send("old", "go")
        assert engine.get("old").data.outcome == "finished"  # type: ignore[attr-defined]
        [child] = engine.children("old")
        assert child.root_id == "old"
        # The history tables came with the upgrade: the instance's history starts here.
        kinds = [e.kind for e in engine.history("old")]
        assert kinds[0] == "event_delivered" and kinds[-1] == "finished"
        assert engine.history(child.id)[0].kind == "started"
        engine.schedule("later", Order, "0 2 * * *")  # the schedules table was added
        assert [s.name for s in engine.schedules()] == ["later"]


def test_a_schema_3_sqlite_file_is_brought_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    data, state = _waiting_order()
    with sqlite3.connect(path) as conn:
        conn.executescript(SQLITE_V3)
        conn.execute(
            "INSERT INTO stmtflow_instances VALUES ('old', 'Order', ?, ?, 'waiting', 2, NULL, "
            "NULL, NULL, 0, NULL, '2030-01-01T00:00:00.000000+00:00', "
            "'2030-01-01T00:00:00.000000+00:00', 0)",
            (data, state),
        )
    SQLiteStore(str(path)).close()
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM stmtflow_meta WHERE key = 'schema_version'")
        assert version.fetchone() == (str(SQLITE_VERSION),)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(stmtflow_instances)")}
        assert {"parent_id", "root_id", "parent_event", "on_parent_end"} <= columns
    _carries_on(f"sqlite:///{path}")


@pytest.mark.postgres
def test_a_schema_1_postgres_database_is_brought_up_to_date(pg_url: str) -> None:
    import psycopg
    from psycopg import sql

    from stmtflow.stores.postgres import _split_schema

    libpq, schema = _split_schema(pg_url)
    assert schema is not None
    data, state = _waiting_order()
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        for statement in POSTGRES_V1.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT INTO stmtflow_instances VALUES ('old', 'Order', %s, %s, 'waiting', 2, NULL, "
            "NULL, NULL, 0, NULL, now(), now())",
            (data, state),
        )
    open_store(pg_url).close()
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        row: Any = conn.execute(
            "SELECT value FROM stmtflow_meta WHERE key = 'schema_version'"
        ).fetchone()
        assert row == (str(POSTGRES_VERSION),)
    _carries_on(pg_url)

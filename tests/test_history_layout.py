"""How the SQL stores lay out histories: on SQLite (`stmtflow.stores._sqlite_history`) a step's
write with history is one statement, as without it; a SQLite schema 9 file (the tail as one
JSON object) and a PostgreSQL schema 7 database (no last seq in the row, a foreign key on the
history) are upgraded with their history and snapshots intact: rewinding and going on work
after it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from test_rewind import Tally  # counts each `go` event with a step

import stmtflow as sf
from stmtflow.runtime import Engine
from stmtflow.stores import SQLiteStore
from stmtflow.stores import sqlite as sqlite_store
from stmtflow.stores._postgres_schema import SCHEMA_VERSION as POSTGRES_VERSION
from stmtflow.stores._sqlite_history import SCHEMA as HISTORY_SCHEMA
from stmtflow.stores._sqlite_history import TAIL
from stmtflow.stores._sqlite_schema import SCHEMA_VERSION


class Counter(sf.WorkflowState):
    n: int = 3
    count: int = 0

    def definition(self) -> sf.Section:
        return sf.S(sf.For("loop", lambda: self.count < self.n, sf.Step("inc", self.inc)))

    def inc(self) -> None:
        self.count += 1


def _statements(store: SQLiteStore) -> list[str]:
    """Every statement the store's connections run from now on (SQLite's trace)."""
    seen: list[str] = []
    for conn in store._all:
        conn.set_trace_callback(seen.append)
    return seen


def test_a_step_s_write_with_history_and_snapshot_is_one_statement(tmp_path: Path) -> None:
    with Engine(f"sqlite:///{tmp_path / 'one.db'}", workflows=[Counter]) as engine:
        engine.start(Counter, {"n": 2}, id="warm")  # opens the connection
        store = engine.store
        assert isinstance(store, SQLiteStore)
        seen = _statements(store)
        engine.start(Counter, {"n": 3 * TAIL}, id="c")
        transactions = [s for s in seen if s.startswith("BEGIN")]
        events = engine.history("c")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    completed = [e for e in events if e.kind == "step_completed"]
    assert len(completed) == 3 * TAIL
    # Only the first write (no tail in the row yet: it reads the table) and the writes that
    # move TAIL events to the history table are transactions; every other is one statement.
    assert len(transactions) == 1 + len(events) // TAIL
    # Each write's snapshot, filed by the trigger in its statement, for the latest 20 events
    # (the default): a ring of 20 rows, the older ones overwritten.
    with Engine(f"sqlite:///{tmp_path / 'one.db'}", workflows=[Counter]) as engine:
        store = engine.store
        last = events[-1].seq
        for count, event in enumerate(completed, 1):
            assert event.snapshot is not None
            snap = store.snapshot("c", event.snapshot)  # type: ignore[attr-defined]
            if event.snapshot > last - 20:
                assert Counter.model_validate_json(snap.data).count == count
        assert store.snapshot("c", completed[0].snapshot) is None  # type: ignore[attr-defined]
    with sqlite3.connect(tmp_path / "one.db") as conn:
        rows = conn.execute("SELECT count(*) FROM stmtflow_snapshots WHERE id = 'c'")
        assert rows.fetchone() == (20,)


def test_a_write_appending_in_its_own_statement_keeps_nothing_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'fail.db'}"
    appending = sqlite_store._appending

    def failing(writes: Any, count: int, snapshots: int) -> Any:
        # The second step's write fails while its one statement runs (json() of text that is
        # not JSON), after the statement has changed the row.
        check = (
            ", error = CASE WHEN instr(:data, '\"count\":2') THEN json('disk full') ELSE error END"
        )
        found = appending(writes, count, snapshots)
        return type(found)(*(sql.replace(" WHERE ", f"{check} WHERE ", 1) for sql in found))

    with Engine(url, workflows=[Counter]) as engine:
        with monkeypatch.context() as patch:
            patch.setattr(sqlite_store, "_appending", failing)
            with pytest.raises(sqlite3.OperationalError):
                engine.start(Counter, {"n": 4}, id="c")
        assert '"count":1' in engine.store.get("c").data
        kept = engine.history("c")
        assert [e.kind for e in kept].count("step_completed") == 1  # the first step only
        engine.wake("c")
        events = engine.history("c")
    assert [e.kind for e in events].count("step_completed") == 4
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


class Wide(sf.WorkflowState):
    """Eighty waiting threads: a state of 16 KB or more, kept in parts on SQLite."""

    count: int = 0

    def definition(self) -> sf.Section:
        waits = (
            sf.Go(f"g{i}", sf.S(sf.Wait(f"w{i}", sf.OnEvent(f"e{i}", lambda _: None))))
            for i in range(80)
        )
        loop = sf.For(
            "loop", True, sf.Wait("next", sf.OnEvent("go", self.go)), sf.Step("add", self.add)
        )
        return sf.S(*waits, loop)

    def go(self, n: int) -> None:
        pass

    def add(self) -> None:
        self.count += 1


def test_a_state_kept_in_parts_is_rewound_exactly(tmp_path: Path) -> None:
    # Its row holds only the head of the state, so its snapshot is filed by the write's
    # transaction, not by the trigger (which would file the head).
    with Engine(f"sqlite:///{tmp_path / 'wide.db'}", workflows=[Wide]) as engine:
        engine.start(Wide, id="w")
        stored = []
        for n in range(4):
            engine.send("w", "go", n)
            stored.append(engine.store.get("w"))
        assert len(stored[1].state) >= 16 * 1024
        to = [e.seq for e in engine.history("w") if e.kind == "step_completed"][1]
        engine.rewind("w", to=to)
        back = engine.store.get("w")
    assert (back.data, back.state) == (stored[1].data, stored[1].state)


_TO_V9 = (
    # Version 9's tail: one JSON object with the last seq and the waiting events.
    """UPDATE stmtflow_instances SET history_tail = json_object('last', history_last,
        'events', json('[' || coalesce(substr(history_tail, 2), '') || ']'))
    WHERE history_last IS NOT NULL""",
    "DROP TRIGGER stmtflow_snapshot_taken",
    "ALTER TABLE stmtflow_instances DROP COLUMN history_count",
    "ALTER TABLE stmtflow_instances DROP COLUMN history_last",
    "ALTER TABLE stmtflow_instances DROP COLUMN history_snap",
    "ALTER TABLE stmtflow_instances DROP COLUMN history_ring",
    # Version 9's snapshots: a row per write, keyed by its seq.
    "DROP TRIGGER stmtflow_history_deleted",
    """CREATE TABLE v9 (id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
        state TEXT NOT NULL, PRIMARY KEY (id, seq)) WITHOUT ROWID""",
    "INSERT INTO v9 SELECT id, seq, data, state FROM stmtflow_snapshots",
    "DROP TABLE stmtflow_snapshots",
    "ALTER TABLE v9 RENAME TO stmtflow_snapshots",
    HISTORY_SCHEMA[2],  # the delete trigger, as version 9 had it
    "UPDATE stmtflow_meta SET value = '9' WHERE key = 'schema_version'",
)


def _run_tally(url: str) -> tuple[list[sf.HistoryEvent], str, int]:
    """Eleven rounds of `Tally` at ``url``: its history, its data, and the seq of the step
    that saw 9."""
    with Engine(url, workflows=[Tally]) as engine:
        engine.start(Tally, id="t")
        for n in range(1, 12):  # on SQLite: some events moved to the table, the rest in the row
            engine.send("t", "go", n)
        before = list(engine.history("t"))
        to = [e.seq for e in before if e.kind == "step_completed"][-3]
        return before, engine.store.get("t").data, to


def _carries_on(url: str, before: list[sf.HistoryEvent], data: str, to: int) -> int:
    """The upgraded instance keeps its history, numbers on, rewinds and goes on; its last
    seq."""
    with Engine(url, workflows=[Tally]) as engine:
        assert list(engine.history("t")) == before
        assert engine.store.get("t").data == data
        engine.send("t", "go", 12)
        after = engine.history("t")
        assert after[: len(before)] == before
        assert [e.seq for e in after] == list(range(1, len(after) + 1))
        inst = engine.rewind("t", to=to)
        assert inst.data.seen == list(range(1, 10))  # type: ignore[attr-defined]
        engine.send("t", "go", 99)
        assert engine.get("t").data.seen == [*range(1, 10), 99]  # type: ignore[attr-defined]
        final = engine.history("t")
        assert [e.seq for e in final] == list(range(1, len(final) + 1))
        return final[-1].seq


def test_a_schema_9_sqlite_file_keeps_its_history_and_rewinds_after_the_upgrade(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v9.db"
    url = f"sqlite:///{path}"
    before, data, to = _run_tally(url)
    assert len(before) > TAIL
    with sqlite3.connect(path) as conn:
        for statement in _TO_V9:
            conn.execute(statement)
        tail = conn.execute("SELECT history_tail FROM stmtflow_instances").fetchone()[0]
        assert tail.startswith('{"last":')
    SQLiteStore(str(path)).close()
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM stmtflow_meta WHERE key = 'schema_version'")
        assert version.fetchone() == (str(SCHEMA_VERSION),)
    _carries_on(url, before, data, to)


_TO_PG_V7 = (
    "ALTER TABLE stmtflow_instances DROP COLUMN history_last",
    """ALTER TABLE stmtflow_history ADD CONSTRAINT stmtflow_history_id_fkey
    FOREIGN KEY (id) REFERENCES stmtflow_instances (id) ON DELETE CASCADE""",
    "UPDATE stmtflow_meta SET value = '7' WHERE key = 'schema_version'",
)


@pytest.mark.postgres
def test_a_schema_7_postgres_database_keeps_its_history_and_rewinds_after_the_upgrade(
    pg_url: str,
) -> None:
    import psycopg
    from psycopg import sql

    from stmtflow.stores.postgres import _split_schema

    before, data, to = _run_tally(pg_url)
    libpq, schema = _split_schema(pg_url)
    assert schema is not None
    path = sql.SQL("SET search_path TO {}").format(sql.Identifier(schema))
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(path)
        for statement in _TO_PG_V7:
            conn.execute(statement)
    last = _carries_on(pg_url, before, data, to)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(path)
        row = conn.execute("SELECT value FROM stmtflow_meta WHERE key = 'schema_version'")
        assert row.fetchone() == (str(POSTGRES_VERSION),)
        fkeys = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'stmtflow_history_id_fkey' "
            "AND connamespace = %s::regnamespace",
            (schema,),
        )
        assert fkeys.fetchone() == (0,)
        kept = conn.execute("SELECT history_last FROM stmtflow_instances WHERE id = 't'")
        assert kept.fetchone() == (last,)  # the row's last seq, counted from the table once

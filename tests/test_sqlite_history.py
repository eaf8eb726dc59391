"""The SQLite store's history layout (`stmtflow.stores._sqlite_history`): a step's write with
history is one statement, as without it, and a schema 9 file (the tail as one JSON object)
is upgraded with its history and snapshots intact: rewinding and going on work after it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import stmtflow as sf
from stmtflow.runtime import Engine
from stmtflow.stores import SQLiteStore
from stmtflow.stores._sqlite_history import TAIL
from stmtflow.stores._sqlite_schema import SCHEMA_VERSION


class Tally(sf.WorkflowState):
    """Counts each ``go`` event with a step."""

    count: int = 0
    seen: list[int] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "loop",
                True,
                sf.Wait("next", sf.OnEvent("go", self.go)),
                sf.Step("add", self.add),
            )
        )

    def go(self, n: int) -> None:
        self.seen.append(n)

    def add(self) -> None:
        self.count += 1


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
    with Engine(f"sqlite:///{tmp_path / 'one.db'}", workflows=[Counter]) as engine:
        store = engine.store
        for event in completed:  # each write's snapshot, filed by the trigger in its statement
            assert event.snapshot is not None
            snap = store.snapshot("c", event.snapshot)  # type: ignore[attr-defined]
            assert snap is not None
            assert Counter.model_validate_json(snap.data).count == completed.index(event) + 1


_TO_V9 = (
    # Version 9's tail: one JSON object with the last seq and the waiting events.
    """UPDATE stmtflow_instances SET history_tail = json_object('last', history_last,
        'events', json('[' || coalesce(substr(history_tail, 2), '') || ']'))
    WHERE history_last IS NOT NULL""",
    "DROP TRIGGER stmtflow_snapshot_taken",
    "ALTER TABLE stmtflow_instances DROP COLUMN history_count",
    "ALTER TABLE stmtflow_instances DROP COLUMN history_last",
    "ALTER TABLE stmtflow_instances DROP COLUMN history_snap",
    "UPDATE stmtflow_meta SET value = '9' WHERE key = 'schema_version'",
)


def test_a_schema_9_file_keeps_its_history_and_rewinds_after_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "v9.db"
    url = f"sqlite:///{path}"
    with Engine(url, workflows=[Tally]) as engine:
        engine.start(Tally, id="t")
        for n in range(1, 12):  # some events moved to the table, the rest in the row's tail
            engine.send("t", "go", n)
        before = list(engine.history("t"))
        kept = engine.store.get("t")
        to = [e.seq for e in before if e.kind == "step_completed"][-3]
    assert len(before) > TAIL
    with sqlite3.connect(path) as conn:
        for statement in _TO_V9:
            conn.execute(statement)
        tail = conn.execute("SELECT history_tail FROM stmtflow_instances").fetchone()[0]
        assert tail.startswith('{"last":')
    with Engine(url, workflows=[Tally]) as engine:
        with sqlite3.connect(path) as conn:
            version = conn.execute("SELECT value FROM stmtflow_meta WHERE key = 'schema_version'")
            assert version.fetchone() == (str(SCHEMA_VERSION),)
        assert list(engine.history("t")) == before
        assert engine.store.get("t").data == kept.data
        engine.send("t", "go", 12)  # appends after the upgraded tail, numbered on
        after = engine.history("t")
        assert after[: len(before)] == before
        assert [e.seq for e in after] == list(range(1, len(after) + 1))
        inst = engine.rewind("t", to=to)
        assert inst.data.seen == list(range(1, 10))  # type: ignore[attr-defined]
        engine.send("t", "go", 99)
        assert engine.get("t").data.seen == [*range(1, 10), 99]  # type: ignore[attr-defined]

"""The SQLite store keeps a large state in parts, one row per thread, and rewrites only those that
changed; every read gives the state back byte for byte (see `stmtflow.stores._sqlite_parts`)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stmtflow as sf
from benchmarks.flows import FanOut  # 60 threads, each waiting for its own ping
from stmtflow.errors import ConflictError, StmtflowError
from stmtflow.runtime import Engine
from stmtflow.state import _REUSE_FROM as REUSE_FROM
from stmtflow.state import StateText, dump_state, state_parts
from stmtflow.stores import Record, SQLiteStore
from stmtflow.stores import _sqlite_parts as sqlite_parts
from stmtflow.stores._sqlite_parts import changed_span, parts_to_store, whole
from stmtflow.stores._sqlite_schema import SCHEMA_VERSION

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def thread(id: str, step: str = "await_ping", pad: int = 0) -> dict[str, object]:
    """A waiting thread's JSON, about as long as a real one (~370 characters)."""
    event = {"type": "FunctionHandler", "req": {"name": "ping", "setup_data": "s" * 250}}
    return {
        "id": id,
        "name": "waiter",
        "status": "waiting_event",
        "cur_step": step + "x" * pad,
        "wait_events": [event],
        "pc": 8,
    }


def state_text(threads: list[dict[str, object]], pc: int = 7) -> str:
    """A state document shaped like the real one: fields, the thread list, then the rest."""
    main = {"id": "_main_", "name": "_main_", "status": "waiting_condition"}
    doc = {"format": 1, "id": "w", "threads": [main, *threads], "pc": pc, "teardowns": []}
    return json.dumps(doc, separators=(",", ":"))


def big(count: int = 80, **changes: object) -> str:
    text = state_text([thread(f"t{i}") for i in range(count)], **changes)  # type: ignore[arg-type]
    assert len(text) >= sqlite_parts.PARTS_FROM
    return text


def rows(path: Path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT id, pos, text FROM stmtflow_state_parts ORDER BY id, pos"
        ).fetchall()


def instance_row(path: Path, id: str) -> tuple[str, int]:
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT state, state_parts FROM stmtflow_instances WHERE id = ?", (id,)
        ).fetchone()
    return str(row[0]), int(row[1])


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "s.db"


def write(store: SQLiteStore, current: Record, state: str) -> Record:
    return store.update(dataclasses.replace(current, state=state), expected_version=current.version)


# -- the pure functions ------------------------------------------------------------------------


def test_small_threadless_or_non_json_texts_are_kept_whole() -> None:
    assert parts_to_store(state_text([thread("t0")])) is None  # short
    assert parts_to_store("x" * sqlite_parts.PARTS_FROM) is None  # not JSON
    assert parts_to_store(json.dumps({"threads": [], "pad": "x" * 20_000})) is None
    assert parts_to_store(json.dumps({"pad": "x" * 20_000})) is None


def test_a_plain_text_is_parted_at_its_threads_by_parsing_it() -> None:
    text = big(pc=123)
    parts = state_parts(text)
    assert parts is not None
    head, threads, tail = parts
    assert head == '{"format":1,"id":"w","threads":['
    assert [json.loads(t.removeprefix(","))["id"] for t in threads] == [
        "_main_",
        *(f"t{i}" for i in range(80)),
    ]
    assert threads[0].startswith("{") and all(t.startswith(",{") for t in threads[1:])
    assert tail == '],"pc":123,"teardowns":[]}'
    assert whole(head, threads, tail) == text


def test_parting_follows_the_json_not_its_spelling() -> None:
    # Any spacing and key order; thread-like objects elsewhere (a teardown naming an id, a
    # string holding JSON) are not threads.
    doc = {
        "teardowns": [{"id": "not-a-thread", "req": {"name": ',{"id":"x"}'}}],
        "threads": [thread(f"t{i}", step=',{"id":"') for i in range(60)],
        "pc": 9,
    }
    text = json.dumps(doc, indent=2)
    parts = parts_to_store(text)
    assert parts is not None
    assert whole(*parts) == text
    assert [json.loads(t.strip().removeprefix(",")) for t in parts.threads] == doc["threads"]
    assert json.loads(parts.head + "]" + parts.tail.lstrip().removeprefix("]")) == {
        **doc,
        "threads": [],
    }


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.dictionaries(st.text(max_size=4), _JSON, max_size=3),
    st.lists(_JSON, min_size=1, max_size=6),
    st.sampled_from([None, 0, 2]),
    st.booleans(),
)
def test_any_json_object_is_parted_at_the_elements_of_its_threads(
    fields: dict[str, object], threads: list[object], indent: int | None, ascii: bool
) -> None:
    doc = {**{k: v for k, v in fields.items() if k != "threads"}, "threads": threads}
    text = json.dumps(doc, indent=indent, ensure_ascii=ascii)
    parts = state_parts(text)
    assert parts is not None
    assert whole(*parts) == text
    assert [json.loads(t.lstrip(" \n,")) for t in parts.threads] == threads


def test_a_dumped_state_brings_the_parts_parsing_would_find() -> None:
    # The engine's dumps keep their threads' texts (StateText); the store takes those instead
    # of parsing the text: both must give the same parts, as threads wait, fire and end.
    wf, state = FanOut(width=60), sf.new_state("w", "FanOut")
    sf.resume(wf, state, max_steps=100, now=NOW)
    parted = 0
    for i in range(60):
        text = dump_state(state)
        assert text == state.model_dump_json()
        # Reused threads' texts from the production threshold on (`dump_state`).
        assert isinstance(text, StateText) is (len(state.threads) >= REUSE_FROM)
        assert state_parts(text) == state_parts(str(text))
        assert parts_to_store(text) == parts_to_store(str(text))
        parted += parts_to_store(text) is not None
        sf.handle_callback(sf.CallbackRequest(name="ping", thread_id=f"t{i}"), wf, state, now=NOW)
        if i % 2:
            sf.resume(wf, state, now=NOW)  # ends the thread
    assert state_parts(dump_state(state)) == state_parts(state.model_dump_json())
    assert parted > 10  # until the state is small enough to be kept whole


@given(
    st.lists(st.text("ab", max_size=3), max_size=8),
    st.lists(st.text("ab", max_size=3), max_size=8),
)
def test_changed_span_is_the_longest_shared_beginning_then_end(
    old: list[str], new: list[str]
) -> None:
    start, end = changed_span(old, new)
    assert old[:start] == new[:start]
    assert start + end <= min(len(old), len(new))
    assert old[len(old) - end :] == new[len(new) - end :]
    if start < min(len(old), len(new)):
        assert old[start] != new[start]  # no longer beginning
    if start + end < min(len(old), len(new)):
        assert old[len(old) - end - 1] != new[len(new) - end - 1]  # no longer end


# -- the store ---------------------------------------------------------------------------------


def test_a_large_state_is_stored_in_parts_and_every_read_gives_it_whole(path: Path) -> None:
    text = big()
    with SQLiteStore(str(path)) as store:
        created = store.create(
            Record(id="w", workflow="FanOut", data="{}", state=text, wake_at=NOW)
        )
        assert created.state == text
        head, count = instance_row(path, "w")
        assert count == 82 and text.startswith(head) and len(head) < 300  # 81 threads + tail
        assert len(rows(path)) == 82
        assert store.get("w").state == text
        assert [r.state for r in store.list()] == [text]
        claimed = store.claim("w", "me", LEASE, NOW)
        assert claimed.state == text
        assert store.renew("w", "me", claimed.fence, LEASE, NOW).state == text
        store.release("w", "me", claimed.fence)
    with SQLiteStore(str(path)) as cold:  # nothing cached: the rows themselves
        assert cold.get("w").state == text
        assert [r.state for r in cold.list()] == [text]
    with SQLiteStore(str(path)) as cold:
        assert [r.state for r in cold.claim_due(NOW, "worker", LEASE)] == [text]


def test_a_write_rewrites_only_the_threads_that_changed_and_the_tail(path: Path) -> None:
    threads = [thread(f"t{i}") for i in range(80)]
    with SQLiteStore(str(path)) as store:
        current = store.create(
            Record(id="w", workflow="FanOut", data="{}", state=state_text(threads))
        )
        with sqlite3.connect(path) as other:  # log every row the store's writes touch
            other.executescript(
                """
                CREATE TABLE touched (op TEXT, pos INTEGER);
                CREATE TRIGGER t_ins AFTER INSERT ON stmtflow_state_parts
                    BEGIN INSERT INTO touched VALUES ('insert', NEW.pos); END;
                CREATE TRIGGER t_upd AFTER UPDATE ON stmtflow_state_parts
                    BEGIN INSERT INTO touched VALUES ('update', NEW.pos); END;
                CREATE TRIGGER t_del AFTER DELETE ON stmtflow_state_parts
                    BEGIN INSERT INTO touched VALUES ('delete', OLD.pos); END;
                """
            )
        before = {pos: text for _, pos, text in rows(path)}
        threads[40] = thread("t40", step="handled")
        del threads[10]
        threads.append(thread("t80"))
        text = state_text(threads, pc=8)
        current = write(store, current, text)
        with sqlite3.connect(path) as other:
            touched = sorted(other.execute("SELECT op, pos FROM touched").fetchall())
        t10, t40 = sorted(before)[11], sorted(before)[41]  # after _main_'s row
        assert [(op, pos) for op, pos in touched if op != "insert"] == [
            ("delete", t10),
            ("update", t40),
            ("update", sqlite_parts.TAIL),
        ]
        assert [op for op, _ in touched].count("insert") == 1  # t80's
        assert store.get("w").state == text
    with SQLiteStore(str(path)) as cold:
        assert cold.get("w").state == text


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "drop", "change", "small", "renumber"]), st.integers(0, 200)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_any_sequence_of_writes_reads_back_exactly_and_leaves_no_stray_rows(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    edits: list[tuple[str, int]],
) -> None:
    path = tmp_path_factory.mktemp("parts") / "s.db"
    monkeypatch.setattr(sqlite_parts, "GAP", 1 << 20)
    threads = [thread(f"t{i}") for i in range(60)]
    serial = 60
    with SQLiteStore(str(path)) as store:
        current = store.create(
            Record(id="w", workflow="FanOut", data="{}", state=state_text(threads))
        )
        for pc, (kind, at) in enumerate(edits):
            if kind == "add":  # new threads, anywhere
                threads.insert(at % (len(threads) + 1), thread(f"t{serial}"))
                serial += 1
            elif kind == "drop" and threads:
                del threads[at % len(threads)]
            elif kind == "change" and threads:
                i = at % len(threads)
                threads[i] = thread(str(threads[i]["id"]), pad=at % 7)
            elif kind == "small":  # down to one thread: kept whole, its parts dropped
                threads = threads[:1]
            elif kind == "renumber":  # no room between positions: renumbered
                monkeypatch.setattr(sqlite_parts, "GAP", 1)
            if len(threads) < 50:  # grow back now and then
                threads += [thread(f"t{serial + i}", pad=i % 3) for i in range(at % 40)]
                serial += at % 40
            text = state_text(threads, pc=pc)
            current = write(store, current, text)
            assert store.get("w").state == text
            with SQLiteStore(str(path)) as cold:
                assert cold.get("w").state == text
            head, count = instance_row(path, "w")
            stored = rows(path)
            assert count == len(stored)
            assert (count == 0) == (parts_to_store(text) is None)
            if count:
                assert whole(head, [t for _, _, t in stored[:-1]], stored[-1][2]) == text
            else:
                assert head == text


def test_a_refused_write_leaves_the_parts_as_they_were(path: Path) -> None:
    with SQLiteStore(str(path)) as store:
        current = store.create(Record(id="w", workflow="FanOut", data="{}", state=big()))
        before = rows(path)
        with pytest.raises(ConflictError):
            store.update(
                dataclasses.replace(current, state=big(70)), expected_version=current.version + 1
            )
        store.claim("w", "other", LEASE, NOW)
        with pytest.raises(ConflictError):  # someone holds the lease
            store.update_free(
                dataclasses.replace(current, state=big(70)),
                expected_version=current.version,
                now=NOW,
            )
        assert rows(path) == before
        assert store.get("w").state == big()


def test_deleting_a_record_deletes_its_parts(path: Path) -> None:
    with SQLiteStore(str(path)) as store:
        store.create(Record(id="w", workflow="FanOut", data="{}", state=big()))
        store.create(Record(id="v", workflow="FanOut", data="{}", state=big(90)))
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM stmtflow_instances WHERE id = 'w'")
    assert {id for id, _, _ in rows(path)} == {"v"}


def test_missing_parts_are_a_clear_error_and_a_new_write_repairs_them(path: Path) -> None:
    with SQLiteStore(str(path)) as store:
        current = store.create(Record(id="w", workflow="FanOut", data="{}", state=big()))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "DELETE FROM stmtflow_state_parts WHERE id = 'w' AND pos < ?", (sqlite_parts.TAIL,)
        )
    with SQLiteStore(str(path)) as store:
        with pytest.raises(StmtflowError, match=r"'w' .* is damaged: it should have 82 rows"):
            store.get("w")
        write(store, current, big(70))
        assert store.get("w").state == big(70)


def test_a_version_1_file_is_brought_up_to_date_when_opened(path: Path) -> None:
    with sqlite3.connect(path) as conn:  # the tables as version 1 created them
        conn.executescript(
            """
            CREATE TABLE stmtflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO stmtflow_meta VALUES ('schema_version', '1');
            CREATE TABLE stmtflow_instances (
                id TEXT PRIMARY KEY, workflow TEXT NOT NULL, data TEXT NOT NULL,
                state TEXT NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL,
                wake_at TEXT, lease_owner TEXT, lease_expires TEXT,
                fence INTEGER NOT NULL DEFAULT 0, error TEXT,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
            CREATE TABLE stmtflow_targets (workflow TEXT PRIMARY KEY, target TEXT NOT NULL);
            """
        )
        conn.execute(
            "INSERT INTO stmtflow_instances VALUES ('w', 'FanOut', '{}', ?, 'waiting', 3, NULL, "
            "NULL, NULL, 0, NULL, '2030-01-01T00:00:00.000000+00:00', "
            "'2030-01-01T00:00:00.000000+00:00')",
            (big(),),
        )
    with SQLiteStore(str(path)) as store:
        current = store.get("w")
        assert current.state == big() and current.version == 3
        write(store, current, big(90))
        assert store.get("w").state == big(90)
    assert instance_row(path, "w")[1] == 92
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM stmtflow_meta WHERE key = 'schema_version'")
        assert version.fetchone() == (str(SCHEMA_VERSION),)


def test_a_version_2_file_is_brought_up_to_date_when_opened(path: Path) -> None:
    # Version 2 kept the first thread in the head and each later thread's row without the
    # ',{"id":"' its text starts with. Make such a file from a version 3 one, then reopen it.
    with SQLiteStore(str(path)) as store:
        store.create(Record(id="w", workflow="FanOut", data="{}", state=big()))
    with sqlite3.connect(path) as conn:
        (first_pos, first), *_ = conn.execute(
            "SELECT pos, text FROM stmtflow_state_parts WHERE id = 'w' ORDER BY pos"
        ).fetchall()
        conn.execute("DELETE FROM stmtflow_state_parts WHERE pos = ?", (first_pos,))
        conn.execute(
            "UPDATE stmtflow_state_parts SET text = substr(text, 9) WHERE pos < ?",
            (sqlite_parts.TAIL,),
        )
        conn.execute(
            "UPDATE stmtflow_instances SET state = state || ?, state_parts = state_parts - 1",
            (first,),
        )
        conn.execute("UPDATE stmtflow_meta SET value = '2' WHERE key = 'schema_version'")
        assert conn.execute("SELECT text FROM stmtflow_state_parts LIMIT 1").fetchone()[0][:7] == (
            't0","na'
        )
    with SQLiteStore(str(path)) as store:
        current = store.get("w")
        assert current.state == big()
        write(store, current, big(90))
        assert store.get("w").state == big(90)
    with SQLiteStore(str(path)) as cold:
        assert cold.get("w").state == big(90)
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM stmtflow_meta WHERE key = 'schema_version'")
        assert version.fetchone() == (str(SCHEMA_VERSION),)


def test_an_engine_delivers_to_a_large_fan_out_through_parts(path: Path) -> None:
    with Engine(f"sqlite:///{path}", workflows=[FanOut]) as engine:
        engine.start(FanOut, {"width": 60}, id="f")
        assert instance_row(path, "f")[1] == 62  # 61 threads and the tail
        for i in reversed(range(60)):  # from the end: the tail's neighbour goes each time
            engine.send("f", "ping", thread_id=f"t{i}")
            if i % 20 == 0:
                with Engine(f"sqlite:///{path}", workflows=[FanOut]) as cold:
                    assert cold.get("f").state == engine.get("f").state
        assert engine.get("f").status is sf.WorkflowStatus.FINISHED
    assert instance_row(path, "f")[1] == 0 and rows(path) == []

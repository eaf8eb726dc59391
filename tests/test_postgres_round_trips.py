"""What a write costs on PostgreSQL in round trips (docs/performance.md, "History" and "Locks"):
a step's write with its history and its outbox rows is one statement, a write with children,
messages or lock claims two round trips; and a refused write appends none of its history or
outbox rows, on every store that keeps them.

The round trips are counted on the wire: libpq's protocol trace of the store's connections,
one round trip per time the client sent and then waited for the server's answer.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from store_urls import store_url

import stmtflow as sf
from stmtflow.errors import ConflictError
from stmtflow.runtime import Engine
from stmtflow.stores import Batch, Record, open_store
from stmtflow.stores._history import HistoryEvent, HistoryWrite
from stmtflow.stores._outbox import OutboxMessage
from stmtflow.stores.postgres import PostgresStore


class Steps(sf.WorkflowState):
    count: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("plain", self.add),
            sf.Step("emits", self.announce),
            sf.Wait("hold", sf.OnEvent("go", lambda _: None)),
            sf.Call("child", Leaf),
        )

    def add(self) -> None:
        self.count += 1

    def announce(self) -> None:
        sf.emit("counted", self.count)


class Leaf(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("leaf", lambda: None))


def round_trips(trace: str) -> int:
    """How many times the client sent and then read: each is one round trip."""
    sides = [line.split("\t")[1] for line in trace.splitlines() if line.count("\t") >= 2]
    return sum(1 for sent, read in itertools.pairwise(sides) if (sent, read) == ("F", "B"))


@contextmanager
def counted(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Note, for every `update` and `update_free` of ``store``, its batch and its round
    trips (those of every connection it takes, refusal reads included)."""
    pool: Any = store._pool  # the store's own connections: the ones a write uses
    real_connection = pool.connection
    trips = [0]
    log: list[Any] = []

    @contextmanager
    def connection(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real_connection(*args, **kwargs) as conn, tempfile.TemporaryFile() as file:
            conn.pgconn.trace(file.fileno())
            try:
                yield conn
            finally:
                conn.pgconn.untrace()
                file.seek(0)
                trips[0] += round_trips(file.read().decode())

    monkeypatch.setattr(pool, "connection", connection)
    for name in ("update", "update_free"):
        real = getattr(store, name)

        def write(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            trips[0] = 0
            try:
                return _real(*args, **kwargs)
            finally:
                log.append((kwargs.get("batch", Batch()), trips[0]))

        monkeypatch.setattr(store, name, write)
    yield log


@pytest.mark.postgres
def test_a_step_s_write_with_history_is_one_round_trip(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Engine(pg_url, workflows=[Steps, Leaf]) as engine:
        store = engine.store
        assert isinstance(store, PostgresStore)
        with counted(store, monkeypatch) as log:
            engine.start(Steps, id="s")
            engine.send("s", "go", None)
        assert engine.get("s").status == "finished"
        events = engine.history("s")
    written = [(batch, trips) for batch, trips in log if batch.history is not None]
    plain = [t for b, t in written if not (b.emit or b.create or b.post or b.take or b.keep)]
    emits = [t for b, t in written if b.emit]
    children = [t for b, t in written if b.create]
    assert plain and emits and children  # each kind of write happened
    assert set(plain) == {1}  # the write, its events and its snapshot: one statement
    assert set(emits) == {1}  # with the outbox rows too
    assert set(children) == {2}  # the write, then the child and commit, pipelined
    assert [e.name for e in events if e.kind == "step_completed"] == ["plain", "emits"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


class Guarded(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Lock("pay", "acct", sf.Step("work", lambda: None)))


@pytest.mark.postgres
def test_a_write_that_changes_lock_claims_is_two_round_trips(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Engine(pg_url, workflows=[Guarded]) as engine:
        store = engine.store
        assert isinstance(store, PostgresStore)
        with counted(store, monkeypatch) as log:
            for id in ("a", "b", "c"):  # a holds, b and c queue behind it
                engine.start(Guarded, id=id)
            for _ in range(20):
                engine.tick()
                if engine.get("c").status == "finished":
                    break
        assert [engine.get(id).status for id in ("a", "b", "c")] == ["finished"] * 3
    claims = [(b.locks, trips) for b, trips in log if b.locks is not None]
    arrivals = [t for locks, t in claims if any(c.key == "acct" for c in locks)]
    releases = [t for locks, t in claims if locks == ()]
    assert len(arrivals) == 3 and len(releases) == 3  # each release grants the next waiter
    assert set(arrivals) == {2} and set(releases) == {2}  # the rows and grants: no extra trip
    taken = [b for b, _ in log if b.take]
    assert len(taken) == 3 and all(b.locks is None for b in taken)  # a grant taken: no lock work


def _write(at: datetime) -> HistoryWrite:
    event = HistoryEvent(seq=0, at=at, kind="step_completed", name="s", attempt=1)
    return HistoryWrite(events=(event,), limit=10, snapshots=5, data='{"n": 1}', state="{}")


@pytest.mark.parametrize(
    "kind", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_refused_write_appends_no_history_and_emits_nothing(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    message = OutboxMessage(
        key="k", topic="t", payload="1", instance_id="p", thread_id="_main_", step="s"
    )
    with open_store(store_url(request, tmp_path, kind, "refused.db")) as store:
        # The history's data and state are the ones the write leaves (as the engine writes).
        record = Record(id="p", workflow="W", data='{"n": 1}', state="{}", status="waiting")
        record = store.create(record)
        kept = store.update(record, expected_version=1, batch=Batch(history=_write(at)))
        with pytest.raises(ConflictError):
            store.update(
                record, expected_version=1, batch=Batch(history=_write(at), emit=(message,))
            )
        history: Any = store
        events, dropped = history.history("p")
        assert [(e.seq, e.snapshot) for e in events] == [(1, 1)] and dropped == 0
        assert history.snapshot("p", 1).data == '{"n": 1}'
        assert history.outbox() == []
        assert store.get("p").version == kept.version


@pytest.mark.postgres
def test_a_failure_in_the_pipelined_transaction_leaves_nothing_and_the_store_usable(
    pg_url: str,
) -> None:
    with PostgresStore(pg_url, max_size=1) as store:  # one connection: the failed one is reused
        parent = store.create(Record(id="p", workflow="W", data="{}", state="{}", status="waiting"))
        bad = Record(id="p/c", workflow="W", data="nul \x00", state="{}", status="waiting")
        with pytest.raises(psycopg.DataError):
            store.update(
                parent,
                expected_version=1,
                batch=Batch(create=(bad,), history=_write(datetime(2026, 3, 1, tzinfo=UTC))),
            )
        assert store.get("p").version == 1  # the write went with its batch
        assert store.history("p") == ([], 0)
        assert [r.id for r in store.list()] == ["p"]
        store.update(parent, expected_version=1)  # the connection is fine
        assert store.get("p").version == 2

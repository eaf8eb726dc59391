"""The outbox (DESIGN §8): `emit` in a step action is committed with the step's checkpoint, a
failed attempt emits nothing, delivery to the engine's sinks is at least once with stable keys,
and a sink that keeps failing backs off and shows. On the memory, SQLite, PostgreSQL and Redis
stores."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from store_urls import HISTORY_STORES
from store_urls import store_url as url_of

import stmtflow as sf
from stmtflow.runtime._outbox import outbox_stuck
from stmtflow.stores import Store, open_store
from stmtflow.stores._sqlite_schema import SCHEMA_VERSION as SQLITE_VERSION
from stmtflow.testing import WorkflowHarness

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=HISTORY_STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_of(request, tmp_path, request.param, "outbox.db")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Order(sf.WorkflowState):
    amount: int = 0
    charged: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("charge", self.charge),
            sf.Wait("ship", sf.OnEvent("shipped", self.shipped)),
        )

    def charge(self) -> None:
        self.charged = True
        sf.emit("orders.charged", {"amount": self.amount})
        sf.emit("audit", "charged")

    def shipped(self, where: str) -> None:
        pass


class Sink:
    """A callable sink that keeps what it got, and fails while ``failing``."""

    def __init__(self) -> None:
        self.got: list[sf.OutboxMessage] = []
        self.failing = False
        self.calls = 0

    def __call__(self, message: sf.OutboxMessage) -> None:
        self.calls += 1
        if self.failing:
            raise ConnectionError("broker down")
        self.got.append(message)


def engine_on(store: Store, *sinks: Any, clock: Clock | None = None) -> sf.Engine:
    return sf.Engine(store, [Order, Flaky, Loop], sinks=list(sinks), clock=clock or Clock())


def test_start_delivers_what_the_step_emitted_with_stable_keys(store: Store) -> None:
    sink = Sink()
    engine = engine_on(store, sink)
    engine.start(Order, {"amount": 7}, id="o-1")
    assert [(m.topic, m.value, m.key) for m in sink.got] == [
        ("orders.charged", {"amount": 7}, "o-1/_main_/charge/1/0"),
        ("audit", "charged", "o-1/_main_/charge/1/1"),
    ]
    first = sink.got[0]
    assert (first.instance_id, first.thread_id, first.step) == ("o-1", "_main_", "charge")
    assert json.loads(first.payload) == {"amount": 7}
    assert engine.outbox_messages() == []  # delivered messages are forgotten


def test_messages_are_committed_with_the_checkpoint_of_their_step(store: Store) -> None:
    seen: list[tuple[bool, list[str]]] = []

    def observe(kind: sf.CheckpointType, wf: sf.WorkflowState, state: sf.State) -> None:
        if kind is sf.CheckpointType.AFTER_STEP:
            # The step's progress is not durable yet, and neither are its messages.
            stored = store.get("o-2")
            seen.append((json.loads(stored.data)["charged"], [m.key for m in store.outbox()]))

    engine = sf.Engine(store, [Order], on_checkpoint=observe, clock=Clock())  # no sinks
    inst = engine.start(Order, id="o-2")
    assert seen == [(False, [])]
    assert inst.data.charged  # type: ignore[attr-defined]
    # Without sinks, nothing is delivered: the messages wait in the outbox, committed.
    assert [m.key for m in engine.outbox_messages("o-2")] == [
        "o-2/_main_/charge/1/0",
        "o-2/_main_/charge/1/1",
    ]
    assert engine.outbox_messages("nobody") == []


class Flaky(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("pay", self.pay, retry=sf.RetryPolicy(max_attempts=3)))

    def pay(self) -> None:
        step = sf.current_step()
        sf.emit("attempt", step.attempt)
        if step.attempt < 2:
            raise TimeoutError("bank slow")


def test_a_failed_attempt_emits_nothing(store: Store) -> None:
    sink, clock = Sink(), Clock()
    engine = engine_on(store, sink, clock=clock)
    engine.start(Flaky, id="f-1")
    assert sink.got == [] and engine.outbox_messages() == []
    clock.now += timedelta(seconds=5)
    engine.tick()
    # The second attempt's message only, with the same key the first attempt would have had.
    assert [(m.value, m.key) for m in sink.got] == [(2, "f-1/_main_/pay/1/0")]


class BadPayload(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("pay", self.pay))

    def pay(self) -> None:
        sf.emit("fine", 1)
        sf.emit("receipt", {"when": datetime(2026, 1, 1)})


def test_a_payload_that_is_not_json_fails_the_step_and_keeps_nothing(store: Store) -> None:
    engine = sf.Engine(store, [BadPayload], default_retry=None, clock=Clock())
    with pytest.raises(sf.StepError, match=r"emit\('receipt'\).*not JSON-serialisable"):
        engine.start(BadPayload, id="b-1")
    assert engine.get("b-1").state.threads[0].cur_step == "pay"
    stored = store.get("b-1")
    assert stored.error is not None
    assert "emit('receipt')" in stored.error and "not JSON-serialisable" in stored.error
    assert store.outbox() == []  # not even the message emitted before the bad one


def test_emit_outside_a_step_or_an_engine_is_a_clear_error() -> None:
    with pytest.raises(sf.OutboxError, match=r"emit\('x'\) was called outside a running step"):
        sf.emit("x", 1)

    class Plain(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Step("go", lambda: sf.emit("x", 1)))

    with pytest.raises(sf.StepError) as info:
        sf.resume(Plain(), sf.new_state("p-1", "Plain"))
    assert isinstance(info.value.__cause__, sf.OutboxError)
    assert "not run by an Engine" in str(info.value)

    class InHandler(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Wait("w", sf.OnEvent("go", lambda _: sf.emit("x", 1))))

    engine = sf.Engine("memory://", [InHandler])
    engine.start(InHandler, id="h-1")
    with pytest.raises(sf.HandlerError, match="outside a running step action"):
        engine.send("h-1", "go", None)


def test_a_topic_must_be_a_non_empty_string() -> None:
    class BadTopic(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Step("go", lambda: sf.emit("", 1)))

    h = WorkflowHarness(BadTopic)
    with pytest.raises(sf.StepError, match="topic must be a non-empty string"):
        h.start()
    assert h.emitted == []


def test_a_pydantic_model_is_sent_as_its_json() -> None:
    class Receipt(sf.WorkflowState):  # any pydantic model
        total: int = 3

        def definition(self) -> sf.Section:
            return sf.S()

    class Shop(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Step("sell", lambda: sf.emit("sold", Receipt())))

    h = WorkflowHarness(Shop).start()
    assert [m.value for m in h.emitted] == [{"total": 3}]


def test_a_crash_before_the_commit_runs_the_step_again_with_the_same_keys(store: Store) -> None:
    class Crash(BaseException):
        pass

    def crash(kind: sf.CheckpointType, wf: sf.WorkflowState, state: sf.State) -> None:
        if kind is sf.CheckpointType.AFTER_STEP:
            raise Crash  # the process dies after the action, before its checkpoint is written

    engine = sf.Engine(store, [Order], on_checkpoint=crash, clock=Clock())
    with pytest.raises(Crash):
        engine.start(Order, id="o-3")
    assert store.outbox() == []
    sink = Sink()
    clock = Clock()
    clock.now += timedelta(minutes=5)  # the dead unit's lease lapsed
    engine_on(store, sink, clock=clock).tick()
    assert [m.key for m in sink.got] == ["o-3/_main_/charge/1/0", "o-3/_main_/charge/1/1"]


def test_a_crash_between_send_and_mark_sent_sends_again_with_the_same_key(store: Store) -> None:
    class Crash(BaseException):
        pass

    got: list[str] = []

    def dies_after_sending(message: sf.OutboxMessage) -> None:
        got.append(message.key)
        raise Crash  # the deliverer dies after the broker took the message

    clock = Clock()
    with pytest.raises(Crash):
        engine_on(store, dies_after_sending, clock=clock).start(Order, id="o-4")
    assert got == ["o-4/_main_/charge/1/0"]
    sink = Sink()
    later = engine_on(store, sink, clock=clock)
    later.deliver_outbox()
    assert sink.got == []  # still claimed by the dead deliverer
    clock.now += timedelta(seconds=31)  # its claim lapsed
    later.deliver_outbox()
    assert [m.key for m in sink.got] == ["o-4/_main_/charge/1/0", "o-4/_main_/charge/1/1"]
    assert store.outbox() == []


def test_a_failing_sink_backs_off_and_shows(store: Store) -> None:
    sink, clock = Sink(), Clock()
    sink.failing = True
    engine = engine_on(store, sink, clock=clock)
    engine.start(Order, id="o-5")  # delivered after the commit: fails
    [failed] = engine.outbox_failures()
    assert (failed.key, failed.attempts) == ("o-5/_main_/charge/1/0", 1)
    assert failed.last_error is not None and "ConnectionError: broker down" in failed.last_error
    assert "Sink" in failed.last_error  # names the sink
    assert failed.next_attempt_at == T0 + timedelta(seconds=1)
    # The message behind it was not tried, and is due at once: one failed call per round.
    assert sink.calls == 1
    assert [m.attempts for m in engine.outbox_messages()] == [1, 0]
    engine.tick()  # the next message's turn: it fails too
    assert [m.attempts for m in engine.outbox_messages()] == [1, 1]
    clock.now += timedelta(milliseconds=500)
    engine.tick()  # neither is due yet: the sink is not called
    assert sink.calls == 2

    [stuck, *_] = outbox_stuck(store)
    assert stuck.instance_id == "o-5"
    assert "o-5/_main_/charge/1/0" in stuck.reason and "broker down" in stuck.reason

    sink.failing = False
    clock.now += timedelta(minutes=6)
    engine.tick()
    assert [m.key for m in sink.got] == ["o-5/_main_/charge/1/0", "o-5/_main_/charge/1/1"]
    assert engine.outbox_failures() == [] and outbox_stuck(store) == []


def test_a_sink_that_keeps_failing_shows_in_stuck(store: Store) -> None:
    sink, clock = Sink(), Clock()
    sink.failing = True
    engine = engine_on(store, sink, clock=clock)
    engine.start(Order, id="o-6")  # ends at once; its messages wait in the outbox
    for _ in range(6):  # three failed rounds for each of its two messages (1 s, 2 s backoff)
        clock.now += timedelta(seconds=5)
        engine.tick()
    found = [item for item in engine.stuck() if item.reason == "outbox_failing"]
    assert {item.id for item in found} == {"o-6"}
    assert any("o-6/_main_/charge/1/0" in item.detail for item in found)
    assert all("broker down" in item.detail for item in found)

    sink.failing = False
    clock.now += timedelta(minutes=6)
    engine.tick()
    assert [item for item in engine.stuck() if item.reason == "outbox_failing"] == []


def test_backoff_is_exponential_and_capped() -> None:
    sink, clock = Sink(), Clock()
    sink.failing = True
    engine = sf.Engine("memory://", sinks=[sink], clock=clock)

    class One(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Step("go", lambda: sf.emit("t", 1)))

    engine.register(One)
    engine.start(One, id="one")
    gaps = []
    for _ in range(12):
        [m] = engine.outbox_messages()
        assert m.next_attempt_at is not None
        gaps.append((m.next_attempt_at - clock.now).total_seconds())
        clock.now = m.next_attempt_at
        engine.deliver_outbox()
    assert gaps == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert engine.outbox_failures()[0].attempts == 13


class Loop(sf.WorkflowState):
    rounds: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "loop",
                lambda: self.rounds < 3,
                sf.Step("tick", self.tick),
            )
        )

    def tick(self) -> None:
        self.rounds += 1
        sf.emit("round", self.rounds)


def test_each_execution_of_a_step_has_keys_of_its_own(store: Store) -> None:
    sink = Sink()
    engine_on(store, sink).start(Loop, id="l-1")
    assert [m.value for m in sink.got] == [1, 2, 3]
    assert len({m.key for m in sink.got}) == 3


def test_harness_records_what_was_emitted() -> None:
    h = WorkflowHarness(Flaky, id="f", default_retry=None).start()
    assert h.emitted == []  # the first attempt failed (its retry waits)
    h.advance(timedelta(seconds=5))
    assert [(m.topic, m.value) for m in h.emitted] == [("attempt", 2)]


def test_sqlite_schema_5_files_get_the_outbox(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with open_store(f"sqlite:///{path}"):
        pass
    with sqlite3.connect(path) as conn:  # as release with schema 5 left it
        conn.execute("DROP TABLE stmtflow_outbox")
        conn.execute("UPDATE stmtflow_meta SET value = '5' WHERE key = 'schema_version'")
    sink = Sink()
    with sf.Engine(f"sqlite:///{path}", [Order], sinks=[sink]) as engine:
        engine.start(Order, id="o-old")
    assert len(sink.got) == 2
    with sqlite3.connect(path) as conn:
        (version,) = conn.execute(
            "SELECT value FROM stmtflow_meta WHERE key = 'schema_version'"
        ).fetchone()
    assert version == str(SQLITE_VERSION)


@pytest.mark.postgres
def test_postgres_schema_3_databases_get_the_outbox(pg_url: str) -> None:
    import psycopg

    with open_store(pg_url):
        pass
    schema = pg_url.rsplit("schema=", 1)[1]
    with psycopg.connect(pg_url.split("?")[0], autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("DROP TABLE stmtflow_outbox")
        conn.execute("UPDATE stmtflow_meta SET value = '3' WHERE key = 'schema_version'")
    sink = Sink()
    with sf.Engine(pg_url, [Order], sinks=[sink]) as engine:
        engine.start(Order, id="o-old")
    assert len(sink.got) == 2


def test_the_worker_delivers_what_other_engines_committed(store: Store) -> None:
    import threading

    engine_on(store).start(Order, id="o-6")  # an engine without sinks: nothing delivered
    assert len(store.outbox()) == 2
    sink = Sink()
    stop = threading.Event()
    worker = engine_on(store, sink)
    worker.run_worker(stop=stop, on_tick=lambda _: stop.set(), handle_signals=False)
    assert [m.key for m in sink.got] == ["o-6/_main_/charge/1/0", "o-6/_main_/charge/1/1"]
    assert store.outbox() == []


def test_the_store_contract_of_the_outbox(store: Store) -> None:
    from stmtflow.stores import Batch, Record

    rec = store.create(Record(id="s-1", workflow="W", data="{}", state="{}"))
    rows = tuple(
        sf.OutboxMessage(key=f"s-1/_main_/a/1/{n}", topic="t", payload=str(n), instance_id="s-1")
        for n in range(3)
    )
    written = store.update(rec, expected_version=rec.version, batch=Batch(emit=rows))
    # A write repeated with the same keys keeps the rows as they are.
    store.update(written, expected_version=written.version, batch=Batch(emit=rows[:1]))
    assert [m.value for m in store.outbox()] == [0, 1, 2]
    assert all(m.next_attempt_at is None and m.created_at is not None for m in store.outbox())
    # A refused write stores none of its rows.
    other = sf.OutboxMessage(key="s-1/x/1/0", topic="t", payload="9", instance_id="s-1")
    with pytest.raises(sf.ConflictError):
        store.update(rec, expected_version=rec.version, batch=Batch(emit=(other,)))
    assert len(store.outbox()) == 3

    lease = timedelta(seconds=30)
    first = store.outbox_claim(T0, lease, limit=2)
    assert [m.value for m in first] == [0, 1]
    second = store.outbox_claim(T0, lease, limit=10)  # another deliverer: only the rest
    assert [m.value for m in second] == [2]
    assert store.outbox_claim(T0, lease) == []
    store.outbox_sent([first[0].seq])
    store.outbox_retry([first[1].seq], T0 + timedelta(seconds=5), "sink: OSError: down")
    store.outbox_retry([second[0].seq], T0)  # put back, no failure counted
    left = store.outbox("s-1")
    assert [(m.value, m.attempts, m.last_error) for m in left] == [
        (1, 1, "sink: OSError: down"),
        (2, 0, None),
    ]
    assert left[0].next_attempt_at == T0 + timedelta(seconds=5)
    assert [m.value for m in store.outbox_claim(T0, lease)] == [2]
    later = T0 + timedelta(seconds=31)  # both claims lapsed / retry due
    assert [m.value for m in store.outbox_claim(later, lease)] == [1, 2]
    store.outbox_sent([m.seq for m in store.outbox()])
    assert store.outbox() == [] and store.outbox("s-1") == []

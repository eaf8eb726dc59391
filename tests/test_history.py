"""History (DESIGN §8): what happened to an instance, written in the commit of the progress it
records, capped per instance; on the memory, SQLite, PostgreSQL and Redis stores."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from pydantic import BaseModel
from store_urls import HISTORY_STORES, store_url

import stmtflow as sf
from stmtflow.runtime import Engine
from stmtflow.stores import _postgres_history, _sqlite_history
from stmtflow.stores._history import TRIM_EVERY
from stmtflow.stores._memory_history import MemoryHistory
from stmtflow.testing import WorkflowHarness

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Pay(sf.WorkflowState):
    amount: int = 5

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("charge", lambda: None))


class Shop(sf.WorkflowState):
    log: list[str] = []
    flaky: bool = True
    paid: dict[str, Any] = {}

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", self.reserve),
            sf.Step(
                "charge",
                self.charge,
                retry=sf.RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=10)),
            ),
            sf.Wait(
                "confirm",
                sf.OnEvent("confirmed", self.confirmed),
                sf.On("late", sf.Timer(hours=1)),
            ),
            sf.Try(sf.Step("risky", self.risky)).Catch(
                ValueError, sf.Step("recover", self.recover)
            ),
            sf.Call("pay", Pay, result=self.took),
        )

    def reserve(self) -> None:
        self.log.append("reserve")

    def charge(self) -> None:
        if self.flaky and sf.current_step().attempt == 1:
            raise RuntimeError("card declined")
        self.log.append("charge")

    def confirmed(self, who: str) -> None:
        self.log.append(f"confirmed by {who}")

    def risky(self) -> None:
        raise ValueError("out of stock")

    def recover(self) -> None:
        self.log.append("recover")

    def took(self, result: Any) -> None:
        self.paid = {"status": result.status}


class Saga(sf.WorkflowState):
    undone: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("book", lambda: None, compensate=lambda: self.undone.append("book")),
            sf.Sleep("nap", timedelta(minutes=5)),
        )


class Doomed(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("explode", self.explode, retry=sf.RetryPolicy(max_attempts=1)))

    def explode(self) -> None:
        raise KeyError("gone")


class Counter(sf.WorkflowState):
    count: int = 0
    n: int = 10

    def definition(self) -> sf.Section:
        return sf.S(sf.For("loop", self.count < self.n, sf.Step("add", self.add)))

    def add(self) -> None:
        self.count += 1


WORKFLOWS = [Pay, Shop, Saga, Doomed, Counter]


@pytest.fixture(params=HISTORY_STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request, tmp_path, request.param, "history.db")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(url: str, clock: Clock) -> Iterator[Engine]:
    with Engine(url, workflows=WORKFLOWS, clock=clock) as eng:
        yield eng


def kinds(events: list[sf.HistoryEvent]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.name) for e in events]


# -- what is recorded ---------------------------------------------------------------------------


def test_every_kind_of_progress_is_recorded_in_order_with_attempts_and_errors(
    engine: Engine, clock: Clock
) -> None:
    engine.start(Shop, id="s-1")
    clock.now += timedelta(seconds=10)
    engine.tick()
    engine.send("s-1", "confirmed", "ann")
    events = engine.history("s-1")
    assert kinds(events) == [
        ("started", None),
        ("step_completed", "reserve"),
        ("retry_scheduled", "charge"),
        ("step_completed", "charge"),
        ("event_delivered", "confirmed"),
        ("step_failed", "risky"),
        ("caught", "risky"),
        ("step_completed", "recover"),
        ("child_started", "pay.child"),
        ("child_ended", "pay.child"),
        ("finished", None),
    ]
    assert [e.seq for e in events] == list(range(1, 12))
    retry = events[2]
    assert retry.attempt == 1 and retry.error is not None and "card declined" in retry.error
    assert retry.detail == {"retry_at": (T0 + timedelta(seconds=10)).isoformat()}
    assert events[3].attempt == 2 and events[3].thread_id == sf.MAIN_THREAD
    assert events[2].at == T0 and events[3].at == T0 + timedelta(seconds=10)
    assert events[8].detail == {"child": "s-1/pay.child@12", "workflow": "Pay"}
    assert events[9].detail == {"child": "s-1/pay.child@12", "status": "finished"}
    assert engine.history("s-1").dropped == 0
    assert kinds(engine.history("s-1/pay.child@12")) == [
        ("started", None),
        ("step_completed", "charge"),
        ("finished", None),
    ]


def test_timers_compensation_cancel_and_failure_are_recorded(engine: Engine, clock: Clock) -> None:
    engine.start(Shop, {"flaky": False}, id="late")
    clock.now += timedelta(hours=2)
    engine.tick()
    assert ("timer_fired", "late") in kinds(engine.history("late"))

    engine.start(Saga, id="saga")
    engine.cancel("saga", compensate=True)
    tail = engine.history("saga")[-2:]
    assert kinds(tail) == [("compensated", "book"), ("cancelled", None)]
    assert tail[0].attempt == 1 and tail[0].error is None

    engine.start(Doomed, id="doomed")
    last = engine.history("doomed")[-2:]
    assert kinds(last) == [("step_failed", "explode"), ("failed", None)]
    assert last[0].attempt == 1 and "gone" in (last[0].error or "")
    assert last[1].error is not None and "explode" in last[1].error


def test_a_failing_step_without_policy_is_recorded_each_time(url: str, clock: Clock) -> None:
    with Engine(url, workflows=[Doomed], clock=clock, default_retry=None) as engine:
        # Doomed has a policy of its own: use one without.
        class Bare(sf.WorkflowState):
            def definition(self) -> sf.Section:
                return sf.S(sf.Step("explode", self.explode))

            def explode(self) -> None:
                raise KeyError("gone")

        with pytest.raises(sf.StepError):
            engine.start(Bare, id="bare")
        with pytest.raises(sf.StepError):
            engine.wake("bare")
        assert kinds(engine.history("bare")) == [
            ("started", None),
            ("step_failed", "explode"),
            ("step_failed", "explode"),
        ]


def test_the_history_is_capped_per_instance_and_counts_what_it_dropped(
    url: str, clock: Clock
) -> None:
    with Engine(url, workflows=[Counter], clock=clock, history_limit=4) as engine:
        engine.start(Counter, {"n": 10}, id="c")
        events = engine.history("c")
        # started + 10 steps + finished = 12 events; the last 4 are kept.
        assert [e.seq for e in events] == [9, 10, 11, 12]
        assert events.dropped == 8
        assert kinds(events)[-1] == ("finished", None)
        # What is past the cap is deleted as the history grows (every TRIM_EVERY events on
        # the SQL stores), snapshots past theirs cleared.
        engine.start(Counter, {"n": 300}, id="long")
        store: Any = engine.store
        kept, dropped = store.history("long")
        assert len(kept) <= 4 + TRIM_EVERY and dropped == 302 - len(kept)
        assert engine.history("long").dropped == 298
        with_snapshot = [e.seq for e in kept if store.snapshot("long", e.seq) is not None]
        assert len(with_snapshot) <= 4 + TRIM_EVERY


def test_history_can_be_switched_off(url: str, clock: Clock) -> None:
    for settings in ({"history": False}, {"history_limit": 0}):
        with Engine(url, workflows=[Counter], clock=clock, **settings) as engine:
            id = f"off-{len(settings)}-{next(iter(settings))}"
            inst = engine.start(Counter, {"n": 3}, id=id)
            assert inst.data.count == 3  # type: ignore[attr-defined]
            assert engine.history(id) == []


def test_bad_settings_and_unknown_ids_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="history_limit"):
        Engine(url, history_limit=-1)
    with pytest.raises(ValueError, match="snapshots"):
        Engine(url, snapshots=-2)
    with Engine(url) as engine, pytest.raises(sf.NotFound):
        engine.history("nobody")


def test_the_harness_gives_the_same_history() -> None:
    harness = WorkflowHarness(Shop, workflows=[Pay]).start()
    harness.advance(timedelta(seconds=10))
    harness.send("confirmed", "bob")
    assert [e.kind for e in harness.history] == [
        "started",
        "step_completed",
        "retry_scheduled",
        "step_completed",
        "event_delivered",
        "step_failed",
        "caught",
        "step_completed",
        "child_started",
        "child_ended",
        "finished",
    ]


# -- same commit ------------------------------------------------------------------------------


def _fail_history_on(monkeypatch: pytest.MonkeyPatch, url: str, step: str) -> type[Exception]:
    """Make the history write of ``step``'s completion fail inside the write's transaction
    (after its rows were inserted, for SQLite; on PostgreSQL, where the history is part of
    the write's own statement, the server refuses its rows; on Redis, where a script that
    fails keeps what it wrote, while its arguments are built: the script is never sent); what
    the failure raises."""

    def hits(write: Any) -> bool:
        return any(e.kind == "step_completed" and e.name == step for e in write.events)

    if url.startswith("memory"):
        real = MemoryHistory._append_history

        def failing_memory(self: MemoryHistory, id: str, write: Any) -> None:
            if hits(write):
                raise OSError("disk full")
            real(self, id, write)

        monkeypatch.setattr(MemoryHistory, "_append_history", failing_memory)
        return OSError
    if url.startswith("redis"):
        from stmtflow.stores import redis as redis_store

        real_args = redis_store.history_args

        def failing_args(write: Any) -> list[str]:
            args = real_args(write)
            if write is not None and hits(write):
                raise OSError("disk full")
            return args

        monkeypatch.setattr(redis_store, "history_args", failing_args)
        return OSError
    if url.startswith("postgres"):
        folded = _postgres_history.folded

        def refused(write: Any) -> tuple[str, dict[str, Any]]:
            items, params = folded(write)
            if hits(write):  # an event without its kind: the column is NOT NULL
                params["h_events"] = Jsonb([{"n": 1, "at": write.events[0].at.isoformat()}])
            return items, params

        monkeypatch.setattr(_postgres_history, "folded", refused)
        return psycopg.errors.NotNullViolation
    # SQLite: the first write with history of an instance (here the failing one) is made in a
    # transaction, the row having no tail yet; it fails after its rows were written. A write
    # that appends in its own statement: tests/test_history_layout.py.
    original = _sqlite_history.append

    def failing(conn: Any, id: str, write: Any, **kw: Any) -> None:
        original(conn, id, write, **kw)
        if hits(write):
            raise OSError("disk full")

    monkeypatch.setattr(_sqlite_history, "append", failing)
    return OSError


def test_an_event_and_its_progress_commit_together_or_not_at_all(
    engine: Engine, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        error = _fail_history_on(patch, url, "add")
        with pytest.raises(error):
            engine.start(Counter, {"n": 3}, id="c")
        stored = engine.store.get("c")
        assert sf.load_state(stored.state).pc == 0 and '"count":0' in stored.data
        assert engine.history("c") == []
    engine.wake("c")
    inst = engine.get("c")
    assert inst.data.count == 3  # type: ignore[attr-defined]
    events = engine.history("c")
    assert [e.kind for e in events].count("step_completed") == 3
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_each_event_s_snapshot_holds_exactly_the_progress_it_records(engine: Engine) -> None:
    engine.start(Counter, {"n": 5}, id="c")
    store: Any = engine.store
    steps = [e for e in engine.history("c") if e.kind == "step_completed"]
    counts = []
    for event in steps:
        snap = store.snapshot("c", event.snapshot)
        counts.append(Counter.model_validate_json(snap.data).count)
    assert counts == [1, 2, 3, 4, 5]


CRASHING = """
import os, signal, sys
import stmtflow as sf

class Crashy(sf.WorkflowState):
    count: int = 0
    def definition(self):
        return sf.S(sf.For("loop", self.count < 6, sf.Step("add", self.add)))
    def add(self):
        if self.count == 3 and sys.argv[2] == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        self.count += 1

lease = __import__("datetime").timedelta(seconds=1)
engine = sf.Engine(sys.argv[1], workflows=[Crashy], lease=lease)
if sys.argv[2] == "crash":
    engine.start(Crashy, id="k")
else:
    import time; time.sleep(1.2)
    engine.tick()
"""


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ],
)
def test_a_sigkill_leaves_no_event_without_progress_nor_progress_without_event(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'crash.db'}"
        if backend == "sqlite"
        else str(request.getfixturevalue({"postgres": "pg_url", "redis": "redis_url"}[backend]))
    )
    script = tmp_path / "crashy.py"
    script.write_text(textwrap.dedent(CRASHING))
    died = subprocess.run([sys.executable, str(script), url, "crash"], check=False)
    assert died.returncode == -9
    with Engine(url) as engine:
        store: Any = engine.store
        rec = store.get("k")
        events, _ = store.history("k")
        steps = [e for e in events if e.kind == "step_completed"]
        assert '"count":3' in rec.data and len(steps) == 3  # the 4th step's action died
        assert Counter.model_validate_json(store.snapshot("k", steps[-1].snapshot).data).count == 3
    subprocess.run([sys.executable, str(script), url, "resume"], check=True)
    with Engine(url) as engine:
        store = engine.store
        events, _ = store.history("k")
        assert [e.kind for e in events].count("step_completed") == 6
        assert events[-1].kind == "finished"
        assert '"count":6' in store.get("k").data


# -- stores without history -------------------------------------------------------------------


@pytest.mark.nats
def test_the_nats_store_refuses_history_clearly(nats_url: str) -> None:
    with pytest.raises(sf.StmtflowError, match="keeps no history"):
        Engine(nats_url, history=True)
    with Engine(nats_url, workflows=[Counter]) as engine:
        engine.start(Counter, {"n": 2}, id="r-1")  # runs, keeping no history
        with pytest.raises(sf.StmtflowError, match="keeps no history"):
            engine.history("r-1")
        with pytest.raises(sf.StmtflowError, match="keeps no history"):
            engine.rewind("r-1", to=1)


class Form(BaseModel):
    ok: bool

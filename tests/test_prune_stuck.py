"""Retention and prune, and stuck work (DESIGN §8), on the memory, SQLite, PostgreSQL
and Redis stores.

Prune deletes ended instances and their history only — never a waiting or running one — in
small batches; stuck lists lapsed leases nobody reclaimed, instances due for too long, and
instances whose latest units all failed, each with why.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from store_urls import HISTORY_STORES, store_url

import stmtflow as sf
from stmtflow.runtime import Engine
from stmtflow.stores import open_store

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Quick(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("do", lambda: None))


class Kept(sf.WorkflowState):
    retention: ClassVar[timedelta | None] = None

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("do", lambda: None))


class Brief(sf.WorkflowState):
    retention: ClassVar[timedelta | None] = timedelta(0)

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("do", lambda: None))


class Waits(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Wait("w", sf.OnEvent("go", lambda _: None), sf.On("t", sf.Timer(minutes=1))))


class Broken(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("boom", self.boom))

    def boom(self) -> None:
        raise RuntimeError("upstream is down")


WORKFLOWS = [Quick, Kept, Brief, Waits, Broken]


@pytest.fixture(params=HISTORY_STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request, tmp_path, request.param, "ops.db")


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    with Engine(url, workflows=WORKFLOWS) as eng:
        yield eng


# -- prune ------------------------------------------------------------------------------------


def test_prune_deletes_ended_instances_and_their_history_never_waiting_ones(
    engine: Engine,
) -> None:
    engine.start(Quick, id="done")
    engine.start(Waits, id="waiting")
    engine.start(Waits, id="cancelled")
    engine.cancel("cancelled")
    assert engine.prune(older_than=timedelta(hours=1)) == 0  # all ended just now
    assert engine.prune(older_than=timedelta(0)) == 2
    assert [i.id for i in engine.list()] == ["waiting"]
    with pytest.raises(sf.NotFound):
        engine.history("done")
    store: Any = engine.store
    assert store.history("done") == ([], 0) and store.history("cancelled") == ([], 0)
    assert store.history("waiting")[0] != []
    # The same id can be started afresh, with a history of its own.
    engine.start(Quick, id="done")
    assert [e.kind for e in engine.history("done")] == ["started", "step_completed", "finished"]


def test_prune_never_touches_a_leased_or_running_instance(engine: Engine) -> None:
    engine.start(Quick, id="done")
    engine.store.claim("done", "someone", timedelta(minutes=5))  # e.g. a teardown retry
    engine.start(Broken, id="retrying")  # waiting for its retry
    assert engine.prune(older_than=timedelta(0)) == 0
    assert {i.id for i in engine.list()} == {"done", "retrying"}


def test_retention_on_the_class_or_the_engine_decides_what_prune_deletes(url: str) -> None:
    with open_store(url) as store:
        engine = Engine(store, workflows=WORKFLOWS)
        for cls in (Quick, Kept, Brief):
            engine.start(cls, id=cls.__name__)
        assert engine.prune() == 1  # only Brief has a retention
        assert sorted(i.id for i in engine.list()) == ["Kept", "Quick"]
        # The engine's retention serves the classes without one; Kept says None: the engine's.
        assert Engine(store, workflows=WORKFLOWS, retention=timedelta(days=30)).prune() == 0
        assert Engine(store, workflows=WORKFLOWS, retention=timedelta(0)).prune() == 2
        assert engine.list() == []


def test_prune_works_in_small_batches(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(230):
        engine.start(Quick, id=f"q-{n:03}")
    store: Any = engine.store
    sizes: list[int] = []
    real = type(store).prune

    def counted(self: Any, *args: Any, **kwargs: Any) -> list[str]:
        done: list[str] = real(self, *args, **kwargs)
        sizes.append(len(done))
        assert kwargs["limit"] == 100
        return done

    monkeypatch.setattr(type(store), "prune", counted)
    assert engine.prune(older_than=timedelta(0)) == 230
    assert sizes == [100, 100, 30]
    assert engine.list() == []


def test_bad_prune_arguments_are_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="older_than"):
        engine.prune(older_than=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="older_than"):
        engine.prune(older_than=30)  # type: ignore[arg-type]


def test_the_worker_prunes_periodically(url: str) -> None:
    with Engine(url, workflows=WORKFLOWS, retention=timedelta(0)) as engine:
        engine.start(Quick, id="old")
        engine.start(Waits, id="live")
        stop = threading.Event()

        def stop_when_pruned(stats: Any) -> None:
            if [i.id for i in engine.list()] == ["live"]:
                stop.set()

        timer = threading.Timer(10, stop.set)
        timer.start()
        engine.run_worker(
            stop=stop, on_tick=stop_when_pruned, handle_signals=False, poll_interval=0.05
        )
        timer.cancel()
        assert [i.id for i in engine.list()] == ["live"]


# -- stuck ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_stuck_lists_lapsed_leases_overdue_and_failing_instances_with_why(url: str) -> None:
    clock = Clock()
    with Engine(url, workflows=WORKFLOWS, clock=clock, default_retry=None) as engine:
        engine.start(Waits, id="fine")
        engine.start(Waits, id="overdue")
        engine.start(Waits, id="abandoned")
        engine.store.claim("abandoned", "dead-worker", timedelta(seconds=30), clock.now)
        with pytest.raises(sf.StepError):
            engine.start(Broken, id="broken")
        for _ in range(2):
            with pytest.raises(sf.StepError):
                engine.wake("broken")
        # "fine" answered in time; the others' timers are 10 minutes overdue.
        engine.send("fine", "go")
        clock.now += timedelta(minutes=11)
        found = {(i.id, i.reason) for i in engine.stuck()}
        assert found == {
            ("overdue", "overdue"),
            ("abandoned", "overdue"),
            ("abandoned", "lease_lapsed"),
            ("broken", "failing"),
            ("broken", "overdue"),  # its retry after the error backoff is due too
        }
        items = {(i.id, i.reason): i for i in engine.stuck()}
        assert "dead-worker" in items["abandoned", "lease_lapsed"].detail
        assert "upstream is down" in items["broken", "failing"].detail
        assert items["overdue", "overdue"].since == T0 + timedelta(minutes=1)
        assert items["overdue", "overdue"].workflow == "Waits"
        # A longer threshold: nothing is overdue yet.
        assert {(i.id, i.reason) for i in engine.stuck(older_than=timedelta(hours=1))} == {
            ("abandoned", "lease_lapsed"),
            ("broken", "failing"),
        }
        engine.tick()  # a worker runs: the overdue timers fire, the lapsed lease is taken over
        assert {(i.id, i.reason) for i in engine.stuck()} == {("broken", "failing")}


def test_a_failure_then_a_success_is_not_stuck(url: str) -> None:
    clock = Clock()
    with Engine(url, workflows=WORKFLOWS, clock=clock) as engine:  # default retries
        engine.start(Broken, id="retrying")
        assert engine.stuck() == []  # one failed attempt, a retry scheduled
        with pytest.raises(ValueError, match="older_than"):
            engine.stuck(older_than=timedelta(seconds=-1))

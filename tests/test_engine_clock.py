"""`Engine(clock=..., on_checkpoint=...)` and `Engine.wake`: what the test harness builds on.

A fake clock is the time of every unit, lease and wake-up; `wake` does one instance's due work
and raises what it meets; the checkpoint observer sees every checkpoint in order, and what it
raises ends the unit with the last durable checkpoint kept. Run on the memory and SQLite stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import stmtflow as sf
from stmtflow.runtime import Engine

T0 = datetime(2030, 1, 1, tzinfo=UTC)
noted: list[datetime] = []


class Nap(sf.WorkflowState):
    """Sleeps an hour between two steps that note the time they see."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("before", self.note),
            sf.Sleep("nap", timedelta(hours=1)),
            sf.Step("after", self.note),
        )

    def note(self) -> None:
        noted.append(sf.current_time())


class Broken(sf.WorkflowState):
    """Pauses five minutes, then runs a step that fails (no retry policy)."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Sleep("pause", timedelta(minutes=5)),
            sf.Step("explode", self.explode),
        )

    def explode(self) -> None:
        raise RuntimeError("boom")


class Unstorable(sf.WorkflowState):
    """Its first step puts a value in the data that JSON cannot hold."""

    thing: Any = None
    count: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("count", self.bump),
            sf.Wait("hold", sf.OnEvent("go", lambda: None)),
            sf.Step("spoil", self.spoil),
            sf.Step("after", lambda: None),
        )

    def bump(self) -> None:
        self.count += 1

    def spoil(self) -> None:
        self.thing = object()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'e.db'}"


@pytest.fixture
def clock() -> Iterator[Clock]:
    noted.clear()
    yield Clock()
    noted.clear()


def test_the_engine_reads_its_clock_for_units_timers_and_ticks(url: str, clock: Clock) -> None:
    with Engine(url, [Nap], clock=clock) as engine:
        inst = engine.start(Nap, id="n-1")
        assert inst.wake_at == T0 + timedelta(hours=1)
        assert engine.tick() == 0  # the clock has not moved: nothing is due
        clock.now = T0 + timedelta(hours=1)
        assert engine.due_count() == 1
        assert engine.tick() == 1
        assert engine.get("n-1").status is sf.WorkflowStatus.FINISHED
    assert noted == [T0, T0 + timedelta(hours=1)]


def test_wake_fires_what_is_due_and_names_the_timers(url: str, clock: Clock) -> None:
    with Engine(url, [Nap], clock=clock) as engine:
        engine.start(Nap, id="n-1")
        assert engine.wake("n-1") == []  # nothing due yet: resumed, nothing fired
        assert engine.get("n-1").status is sf.WorkflowStatus.WAITING
        clock.now = T0 + timedelta(hours=2)
        assert engine.wake("n-1") == ["nap.timer"]
        assert engine.get("n-1").status is sf.WorkflowStatus.FINISHED


def test_wake_raises_what_tick_only_records(url: str, clock: Clock) -> None:
    with Engine(url, [Broken], clock=clock, default_retry=None) as engine:
        engine.start(Broken, id="b-1")
        clock.now = T0 + timedelta(minutes=5)
        with pytest.raises(sf.StepError, match="boom"):
            engine.wake("b-1")
        rec = engine.store.get("b-1")
        assert rec.error is not None and "boom" in rec.error
        assert rec.wake_at == clock.now + engine.error_backoff
        assert rec.lease_owner is None
        clock.now = rec.wake_at
        assert engine.tick() == 0  # the same failure, counted by the tick, not raised
        assert engine.get("b-1").state.threads[0].cur_step == "explode"


def test_the_observer_sees_every_checkpoint_in_order(url: str, clock: Clock) -> None:
    seen: list[tuple[str, str, int]] = []

    def observe(kind: sf.CheckpointType, data: sf.WorkflowState, state: sf.State) -> None:
        seen.append((kind.value, type(data).__name__, state.pc))

    with Engine(url, [Nap], clock=clock, on_checkpoint=observe) as engine:
        engine.start(Nap, id="n-1")
        clock.now = T0 + timedelta(hours=1)
        engine.tick()
    kinds: list[sf.CheckpointType] = []
    wf, state = Nap(), sf.new_state("n-1", "Nap")
    sf.resume(wf, state, kinds.append, now=T0)
    assert [k for k, _, _ in seen][: len(kinds)] == [k.value for k in kinds]
    assert {name for _, name, _ in seen} == {"Nap"}
    assert [pc for _, _, pc in seen] == sorted(pc for _, _, pc in seen)  # pc only grows


def test_an_observer_error_ends_the_unit_with_the_last_durable_checkpoint(
    url: str, clock: Clock
) -> None:
    def refuse_spoiled(kind: sf.CheckpointType, data: sf.WorkflowState, state: sf.State) -> None:
        if isinstance(data, Unstorable) and data.thing is not None:
            raise sf.StmtflowError("spoiled data")

    with Engine(url, [Unstorable], clock=clock, on_checkpoint=refuse_spoiled) as engine:
        engine.start(Unstorable, id="u-1")
        before = engine.get("u-1")
        with pytest.raises(sf.StmtflowError, match="spoiled data"):
            engine.send("u-1", "go")
        after = engine.store.get("u-1")
        assert after.error is not None and "spoiled data" in after.error
        assert after.lease_owner is None
        inst = engine.get("u-1")
        assert inst.data.thing is None and inst.data.count == 1
        assert inst.state.pc > before.state.pc  # the delivery before the step was durable


def test_data_that_cannot_be_stored_keeps_the_last_durable_checkpoint(
    url: str, clock: Clock
) -> None:
    with Engine(url, [Unstorable], clock=clock) as engine:
        engine.start(Unstorable, id="u-1")
        with pytest.raises(sf.ExecutionError, match="cannot be stored as JSON"):
            engine.send("u-1", "go")
        rec = engine.store.get("u-1")
        assert rec.error is not None and "cannot be stored as JSON" in rec.error
        assert rec.lease_owner is None
        inst = engine.get("u-1")
        assert inst.data.thing is None and inst.data.count == 1
        assert inst.state.threads[0].cur_step == "spoil"  # it runs again on the next try

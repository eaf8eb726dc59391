"""Rewind and fork (DESIGN §8): data and state put back exactly as they stood after a history
event, the wake-up, pending inputs and inbox made to fit; refusals with `RewindError`; a fork
leaves the original untouched. On the memory, SQLite, PostgreSQL and Redis stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from store_urls import HISTORY_STORES, store_url

import stmtflow as sf
from stmtflow.runtime import Engine

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


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


class Verdict(BaseModel):
    ok: bool


class Review(sf.WorkflowState):
    prepared: bool = False
    ok: bool | None = None

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("prepare", self.prepare),
            sf.Ask("approve", Verdict, self.decide, prompt="Approve?"),
            sf.Sleep("cool", timedelta(hours=1)),
        )

    def prepare(self) -> None:
        self.prepared = True

    def decide(self, verdict: Verdict) -> None:
        self.ok = verdict.ok


class Helper(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Wait("hold", sf.OnEvent("release", lambda _: None)))


class Boss(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("plan", lambda: None),
            sf.Wait("gate", sf.OnEvent("open", lambda _: None)),
            sf.Call("delegate", Helper),
        )


WORKFLOWS = [Tally, Review, Helper, Boss]


@pytest.fixture(params=HISTORY_STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request, tmp_path, request.param, "rewind.db")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(url: str, clock: Clock) -> Iterator[Engine]:
    with Engine(url, workflows=WORKFLOWS, clock=clock) as eng:
        yield eng


def last_seq(engine: Engine, id: str, kind: str) -> int:
    return [e.seq for e in engine.history(id) if e.kind == kind][-1]


def test_rewind_restores_data_and_state_exactly_as_after_the_event(engine: Engine) -> None:
    engine.start(Tally, id="t")
    engine.send("t", "go", 1)
    engine.send("t", "go", 2)
    after_two = engine.store.get("t")
    to = last_seq(engine, "t", "step_completed")
    engine.send("t", "go", 3)
    assert engine.get("t").data.count == 3  # type: ignore[attr-defined]

    inst = engine.rewind("t", to=to)
    stored = engine.store.get("t")
    assert (stored.data, stored.state) == (after_two.data, after_two.state)
    assert inst.data.seen == [1, 2] and inst.status is sf.WorkflowStatus.WAITING  # type: ignore[attr-defined]
    assert stored.wake_at is None and stored.lease_owner is None
    rewound = engine.history("t")[-1]
    assert rewound.kind == "rewound" and rewound.detail == {"to": to}
    # It carries on from there: the next event is the third again.
    engine.send("t", "go", 30)
    assert engine.get("t").data.seen == [1, 2, 30]  # type: ignore[attr-defined]


def test_rewind_makes_wake_up_pending_events_and_inputs_fit_the_restored_state(
    engine: Engine, clock: Clock
) -> None:
    engine.start(Review, id="r")
    [asked] = engine.inputs()
    asking = engine.store.get("r")
    to = last_seq(engine, "r", "step_completed")
    engine.send("r", "approve.answer", {"ok": True}, thread_id=asked.thread_id)
    sleeping = engine.store.get("r")
    assert engine.inputs() == [] and sleeping.wake_at == T0 + timedelta(hours=1)

    engine.rewind("r", to=to)
    restored = engine.store.get("r")
    assert (restored.data, restored.state) == (asking.data, asking.state)
    assert restored.wake_at is None and restored.status == "waiting"
    assert [(i.instance_id, i.event) for i in engine.inputs()] == [("r", "approve.answer")]
    assert [p.name for p in engine.pending("r")] == ["approve.answer"]

    # Rewinding to the write that armed the timer brings its deadline back with it: passed
    # meanwhile, it is due at once.
    engine.send("r", "approve.answer", {"ok": False}, thread_id=asked.thread_id)
    to_sleep = last_seq(engine, "r", "event_delivered")
    clock.now += timedelta(hours=2)
    engine.tick()
    assert engine.get("r").status is sf.WorkflowStatus.FINISHED
    engine.rewind("r", to=to_sleep)
    back = engine.store.get("r")
    assert back.status == "waiting" and engine.inputs() == []
    assert back.wake_at == T0 + timedelta(hours=1)
    assert engine.tick() == 1
    assert engine.get("r").status is sf.WorkflowStatus.FINISHED


def test_a_rewind_without_a_snapshot_is_refused_naming_why(url: str, clock: Clock) -> None:
    with Engine(url, workflows=WORKFLOWS, clock=clock, snapshots=2, history_limit=6) as engine:
        engine.start(Tally, id="t")
        for n in range(4):
            engine.send("t", "go", n)
        events = engine.history("t")
        before = engine.store.get("t")
        with pytest.raises(sf.RewindError, match="no snapshot is kept"):
            engine.rewind("t", to=events[0].seq)
        with pytest.raises(sf.RewindError, match="dropped from the history"):
            engine.rewind("t", to=1)
        with pytest.raises(sf.RewindError, match="no such event"):
            engine.rewind("t", to=999)
        with pytest.raises(sf.RewindError, match="seq >= 1"):
            engine.rewind("t", to=0)
        assert engine.store.get("t").version == before.version
        engine.rewind("t", to=events[-1].seq)  # the latest is kept


def test_a_rewind_past_a_child_that_still_runs_is_refused(engine: Engine) -> None:
    engine.start(Boss, id="b")
    to = last_seq(engine, "b", "step_completed")
    engine.send("b", "open")
    [child] = engine.children("b")
    assert child.status is sf.WorkflowStatus.WAITING
    before = engine.store.get("b")
    with pytest.raises(sf.RewindError, match=f"child {child.id!r}.*still waiting"):
        engine.rewind("b", to=to)
    assert engine.store.get("b").version == before.version
    # Once the child ended, a rewind would start it again under the same id: fork instead.
    engine.send(child.id, "release")
    assert engine.get("b").status is sf.WorkflowStatus.FINISHED
    with pytest.raises(sf.RewindError, match="fork the instance instead"):
        engine.rewind("b", to=to)
    engine.fork("b", to=to, new_id="b2")
    engine.send("b2", "open")
    [other] = engine.children("b2")
    assert other.id != child.id and other.status is sf.WorkflowStatus.WAITING
    # A snapshot that waits on a child cannot be forked: the child reports to the original.
    waiting = last_seq(engine, "b", "child_started")
    with pytest.raises(sf.RewindError, match="waits on child"):
        engine.fork("b", to=waiting, new_id="b3")
    # ... nor rewound to once that child ended: its end would never come again.
    with pytest.raises(sf.RewindError, match="has ended since"):
        engine.rewind("b", to=waiting)


def test_fork_starts_a_new_instance_from_the_snapshot_and_leaves_the_original_untouched(
    engine: Engine,
) -> None:
    engine.start(Tally, id="t")
    engine.send("t", "go", 1)
    to = last_seq(engine, "t", "step_completed")
    engine.send("t", "go", 2)
    original = engine.store.get("t")
    history = engine.history("t")

    fork = engine.fork("t", to=to, new_id="t-fork")
    assert fork.id == "t-fork" and fork.state.id == "t-fork"
    assert fork.data.seen == [1] and fork.status is sf.WorkflowStatus.WAITING  # type: ignore[attr-defined]
    assert engine.store.get("t") == original and engine.history("t") == history
    assert [(e.kind, e.detail) for e in engine.history("t-fork")] == [
        ("started", {"workflow": "Tally"}),
        ("rewound", {"to": to, "from": "t"}),
    ]
    engine.send("t-fork", "go", 7)
    assert engine.get("t-fork").data.seen == [1, 7]  # type: ignore[attr-defined]
    assert engine.get("t").data.seen == [1, 2]  # type: ignore[attr-defined]
    with pytest.raises(sf.RewindError, match="exists already"):
        engine.fork("t", to=to, new_id="t-fork")
    with pytest.raises(sf.NotFound):
        engine.fork("nobody", to=1, new_id="x")


def _unused(x: Any) -> None:  # pragma: no cover - keeps imports honest for type checkers
    del x

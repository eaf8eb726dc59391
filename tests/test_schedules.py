"""Schedules: cron fires start instances exactly once, in local time, with overlap and catch-up.

Every test runs on every store (memory, SQLite, PostgreSQL, Redis, NATS) with a fake clock; the
race of two worker processes is in tests/test_schedules_processes.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from pathlib import Path
from typing import Any

import pytest
from store_urls import EVERY_STORE, store_url

import stmtflow as sf
from stmtflow.errors import NotFound, ScheduleError, StmtflowError
from stmtflow.runtime import Engine, WorkerStats, _schedules, _worker
from stmtflow.runtime._schedules import MISFIRE_GRACE, fire_id

RUNS: list[str] = []
"""Every ``send`` step execution of `Report`, by instance id (across engines of one test)."""

DURING_STEP: list[Any] = []
"""Calls `Watched.work` makes (each once) while its step runs: another worker's tick, say."""


class Report(sf.WorkflowState):
    title: str = "daily"

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("send", self.send))

    def send(self) -> None:
        RUNS.append(sf.current_step().workflow_id)


class Held(sf.WorkflowState):
    """Runs until its ``done`` event arrives."""

    def definition(self) -> sf.Section:
        return sf.S(sf.Wait("hold", sf.OnEvent("done", lambda _: None)))


WORKFLOWS = [Report, Held]
T0 = datetime(2026, 1, 10, 1, 59, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, when: datetime) -> datetime:
        self.now = when
        return when


@pytest.fixture(autouse=True)
def _fresh_runs() -> None:
    RUNS.clear()
    DURING_STEP.clear()


@pytest.fixture(params=EVERY_STORE)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request, tmp_path, request.param, "schedules.db")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(url: str, clock: Clock) -> Iterator[Engine]:
    with Engine(url, workflows=WORKFLOWS, clock=clock) as eng:
        yield eng


def ids(engine: Engine, workflow: str | None = None) -> list[str]:
    return sorted(i.id for i in engine.list(workflow=workflow))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- firing -----------------------------------------------------------------------------------


def test_a_fire_starts_one_instance_named_after_the_schedule_and_the_fire_time(
    engine: Engine, clock: Clock
) -> None:
    engine.schedule("nightly", Report, "0 2 * * *", input={"title": "sales"})
    assert engine.tick() == 0 and ids(engine) == []  # 01:59: not yet

    clock.at(utc(2026, 1, 10, 2, 0, 5))
    engine.tick()
    engine.tick()
    assert ids(engine) == ["nightly@2026-01-10T02:00:00Z"]
    inst = engine.get("nightly@2026-01-10T02:00:00Z")
    assert inst.status is sf.WorkflowStatus.FINISHED and inst.data.title == "sales"
    assert RUNS == ["nightly@2026-01-10T02:00:00Z"]
    (s,) = engine.schedules()
    assert s.next_fire == utc(2026, 1, 11, 2, 0) and s.last_id == inst.id


def test_two_engines_ticking_the_same_fire_start_it_once(engine: Engine, clock: Clock) -> None:
    other = Engine(engine.store, workflows=WORKFLOWS, clock=clock)
    engine.schedule("nightly", Report, "0 2 * * *")
    clock.at(utc(2026, 1, 10, 2, 0, 1))
    stale = engine.store.get_schedule("nightly")  # what the slower worker read
    engine.tick()
    # The slower worker's round is refused (the row moved on), so it starts nothing.
    assert _schedules.fire_due(other, clock.now, WorkerStats()) == 0
    other.tick()
    assert ids(engine) == ["nightly@2026-01-10T02:00:00Z"] and len(RUNS) == 1
    assert engine.store.get_schedule("nightly").version > stale.version


class Crash(BaseException):
    """The process dies (not an error the worker catches)."""


def test_a_crash_between_deciding_a_fire_and_starting_it_starts_it_on_the_next_tick_once(
    engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.schedule("nightly", Report, "0 2 * * *")
    clock.at(utc(2026, 1, 10, 2, 0, 1))
    real = _schedules._start

    def crash(*args: Any) -> Any:
        raise Crash

    monkeypatch.setattr(_schedules, "_start", crash)
    with pytest.raises(Crash):
        engine.tick()
    assert ids(engine) == [] and engine.schedules()[0].pending == utc(2026, 1, 10, 2, 0)

    monkeypatch.setattr(_schedules, "_start", real)
    clock.at(utc(2026, 1, 10, 2, 0, 30))
    engine.tick()
    engine.tick()
    assert ids(engine) == ["nightly@2026-01-10T02:00:00Z"] and len(RUNS) == 1
    s = engine.schedules()[0]
    assert s.pending is None and s.next_fire == utc(2026, 1, 11, 2, 0)


def test_a_crash_after_starting_but_before_recording_it_does_not_start_it_twice(
    engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.schedule("nightly", Report, "0 2 * * *")
    clock.at(utc(2026, 1, 10, 2, 0, 1))
    real = _schedules._start

    def start_then_crash(*args: Any) -> Any:
        real(*args)
        raise Crash

    monkeypatch.setattr(_schedules, "_start", start_then_crash)
    with pytest.raises(Crash):
        engine.tick()
    monkeypatch.setattr(_schedules, "_start", real)
    engine.tick()
    assert ids(engine) == ["nightly@2026-01-10T02:00:00Z"] and len(RUNS) == 1
    assert engine.schedules()[0].pending is None


def test_a_fire_a_worker_cannot_start_is_counted_and_started_by_one_that_can(
    engine: Engine, clock: Clock
) -> None:
    engine.schedule("nightly", Report, "0 2 * * *")
    clock.at(utc(2026, 1, 10, 2, 0, 1))
    bare = Engine(engine.store, clock=clock)  # knows no workflow
    stats = WorkerStats()
    assert _worker.tick(bare, clock.now, 10, stats) == 0
    assert stats.failed == 1 and "workflow type 'Report' is not registered" in str(stats.last_error)
    assert ids(engine) == [] and engine.schedules()[0].pending == utc(2026, 1, 10, 2, 0)

    stats = WorkerStats()
    assert _worker.tick(engine, clock.now, 10, stats) == 1 and stats.fired == 1
    assert ids(engine) == ["nightly@2026-01-10T02:00:00Z"]


# -- overlap ----------------------------------------------------------------------------------


def test_skip_starts_no_fire_while_the_last_instance_runs(engine: Engine, clock: Clock) -> None:
    engine.schedule("hold", Held, "0 * * * *")
    clock.at(utc(2026, 1, 10, 2, 0, 1))
    engine.tick()
    clock.at(utc(2026, 1, 10, 3, 0, 1))
    engine.tick()  # 02:00's instance still waits: 03:00 is skipped
    assert ids(engine) == ["hold@2026-01-10T02:00:00Z"]
    engine.send("hold@2026-01-10T02:00:00Z", "done")
    clock.at(utc(2026, 1, 10, 4, 0, 1))
    engine.tick()
    assert ids(engine) == ["hold@2026-01-10T02:00:00Z", "hold@2026-01-10T04:00:00Z"]


def test_allow_starts_every_fire_while_the_last_runs(engine: Engine, clock: Clock) -> None:
    engine.schedule("hold", Held, "0 * * * *", overlap="allow")
    for hour in (2, 3, 4):
        clock.at(utc(2026, 1, 10, hour, 0, 1))
        engine.tick()
    assert ids(engine) == [f"hold@2026-01-10T0{h}:00:00Z" for h in (2, 3, 4)]


def test_buffer_one_keeps_the_first_fire_and_starts_it_when_the_running_one_ends(
    engine: Engine, clock: Clock
) -> None:
    engine.schedule("hold", Held, "0 * * * *", overlap="buffer_one")
    for hour in (2, 3, 4):
        clock.at(utc(2026, 1, 10, hour, 0, 1))
        engine.tick()
    assert ids(engine) == ["hold@2026-01-10T02:00:00Z"]
    assert engine.schedules()[0].buffered == utc(2026, 1, 10, 3, 0)

    engine.send("hold@2026-01-10T02:00:00Z", "done")
    clock.at(utc(2026, 1, 10, 4, 10))
    engine.tick()
    assert ids(engine) == ["hold@2026-01-10T02:00:00Z", "hold@2026-01-10T03:00:00Z"]
    engine.tick()  # 04:00 came while 02:00 ran and the buffer was full: dropped
    assert len(ids(engine)) == 2 and engine.schedules()[0].buffered is None


# -- catch-up after downtime ------------------------------------------------------------------


def test_fires_missed_within_the_catchup_window_run_and_older_ones_are_skipped(
    engine: Engine, clock: Clock
) -> None:
    engine.schedule("hourly", Report, "0 * * * *", overlap="allow", catchup=timedelta(hours=2))
    clock.at(utc(2026, 1, 10, 7, 30))  # down since 01:59: 02:00 ... 07:00 missed
    engine.tick()
    assert ids(engine) == [f"hourly@2026-01-10T0{h}:00:00Z" for h in (6, 7)]
    assert engine.schedules()[0].next_fire == utc(2026, 1, 10, 8, 0)


def test_without_a_catchup_window_only_a_fire_within_the_grace_runs(
    engine: Engine, clock: Clock
) -> None:
    engine.schedule("hourly", Report, "0 * * * *")
    clock.at(utc(2026, 1, 10, 7, 0) + MISFIRE_GRACE - timedelta(seconds=1))
    engine.tick()
    assert ids(engine) == ["hourly@2026-01-10T07:00:00Z"]

    clock.at(utc(2026, 1, 10, 8, 0) + MISFIRE_GRACE + timedelta(seconds=1))
    engine.tick()  # 08:00 is too late now
    assert ids(engine) == ["hourly@2026-01-10T07:00:00Z"]
    assert engine.schedules()[0].next_fire == utc(2026, 1, 10, 9, 0)


# -- time zones -------------------------------------------------------------------------------


def test_spring_forward_a_time_that_does_not_exist_fires_at_the_end_of_the_gap(
    engine: Engine, clock: Clock
) -> None:
    clock.at(utc(2026, 3, 7, 0, 0))  # 8 March 2026: clocks go 02:00 EST -> 03:00 EDT
    engine.schedule("night", Report, "30 2 * * *", timezone="America/New_York")
    fired = []
    for at in (utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)):
        clock.at(at + timedelta(seconds=2))
        engine.tick()
        fired.append(engine.schedules()[0].last_id)
    assert fired == [
        "night@2026-03-07T07:30:00Z",  # 02:30 EST
        "night@2026-03-08T07:00:00Z",  # 02:30 does not exist: 03:00 EDT
        "night@2026-03-09T06:30:00Z",  # 02:30 EDT
    ]
    assert ids(engine) == sorted(fired)


def test_fall_back_a_daily_time_fires_once_and_an_hourly_one_at_both_hours(
    engine: Engine, clock: Clock
) -> None:
    start = utc(2026, 11, 1, 3, 59)  # 1 November 2026: 02:00 EDT -> 01:00 EST
    clock.at(start)
    daily = engine.schedule("daily", Report, "30 1 * * *", timezone="America/New_York")
    hourly = engine.schedule("hourly", Report, "0 * * * *", timezone="America/New_York")
    day_end = utc(2026, 11, 1, 12, 0)
    assert list(takewhile(lambda t: t < day_end, daily.fire_times(start))) == [
        utc(2026, 11, 1, 5, 30)
    ]
    assert list(takewhile(lambda t: t < utc(2026, 11, 1, 8, 0), hourly.fire_times(start))) == [
        utc(2026, 11, 1, 4, 0),  # 00:00 EDT
        utc(2026, 11, 1, 5, 0),  # 01:00 EDT
        utc(2026, 11, 1, 6, 0),  # 01:00 EST
        utc(2026, 11, 1, 7, 0),  # 02:00 EST
    ]
    for at in (utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 0)):
        clock.at(at + timedelta(seconds=1))
        engine.tick()
    assert ids(engine) == [
        "daily@2026-11-01T05:30:00Z",
        "hourly@2026-11-01T05:00:00Z",
        "hourly@2026-11-01T06:00:00Z",
    ]


# -- pause, resume, trigger, backfill, remove ----------------------------------------------------


def test_a_paused_schedule_starts_nothing_and_resumes_from_its_next_fire(
    engine: Engine, clock: Clock
) -> None:
    engine.schedule("hourly", Report, "0 * * * *", catchup=timedelta(hours=5))
    assert engine.pause_schedule("hourly").paused
    clock.at(utc(2026, 1, 10, 3, 0, 1))
    engine.tick()
    assert ids(engine) == []
    s = engine.resume_schedule("hourly")
    assert not s.paused and s.next_fire == utc(2026, 1, 10, 4, 0)  # 02:00, 03:00 skipped
    clock.at(utc(2026, 1, 10, 4, 0, 1))
    engine.tick()
    assert ids(engine) == ["hourly@2026-01-10T04:00:00Z"]


def test_trigger_starts_an_instance_now_even_when_paused(engine: Engine, clock: Clock) -> None:
    engine.schedule("nightly", Report, "0 2 * * *")
    engine.pause_schedule("nightly")
    clock.at(utc(2026, 1, 10, 1, 59, 30, 250))
    inst = engine.trigger("nightly")
    assert inst.id == "nightly@2026-01-10T01:59:30Z" and inst.status.value == "finished"
    assert engine.schedules()[0].last_id == inst.id and engine.schedules()[0].paused


class Watched(sf.WorkflowState):
    """A step (which runs what `DURING_STEP` holds), then waits until its ``done`` event."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("work", self.work),
            sf.Wait("hold", sf.OnEvent("done", lambda _: None)),
        )

    def work(self) -> None:
        while DURING_STEP:
            DURING_STEP.pop(0)()


def test_a_fire_by_a_worker_while_a_trigger_starts_its_instance_is_not_forgotten(
    url: str, clock: Clock
) -> None:
    """`trigger` records its instance with a compare-and-set round of the schedule, as a fire
    does: a worker firing meanwhile is not overwritten, so ``overlap="skip"`` still sees what
    runs."""
    workflows = [*WORKFLOWS, Watched]
    with (
        Engine(url, workflows=workflows, clock=clock) as engine,
        Engine(engine.store, workflows=workflows, clock=clock) as worker,
    ):
        engine.schedule("hourly", Watched, "0 * * * *")
        clock.at(utc(2026, 1, 10, 2, 0, 10))  # 02:00 is due
        DURING_STEP.append(worker.tick)  # the worker ticks while the trigger's instance runs

        triggered = engine.trigger("hourly")
        assert triggered.id == "hourly@2026-01-10T02:00:10Z" and DURING_STEP == []
        engine.send(triggered.id, "done")
        clock.at(utc(2026, 1, 10, 3, 0, 10))
        worker.tick()

        running = [i.id for i in engine.list() if i.status is not sf.WorkflowStatus.FINISHED]
        assert len(running) == 1, f"overlap='skip' left {running} running at once"
        (s,) = engine.schedules()
        assert s.last_id == running[0] and s.pending is None


def test_a_trigger_starts_a_fire_a_worker_left_pending_first(
    engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.schedule("nightly", Report, "0 2 * * *")
    clock.at(utc(2026, 1, 10, 2, 0, 1))
    real = _schedules._start

    def crash(*args: Any) -> Any:
        raise Crash

    monkeypatch.setattr(_schedules, "_start", crash)
    with pytest.raises(Crash):
        engine.tick()  # the worker died after deciding the 02:00 fire
    monkeypatch.setattr(_schedules, "_start", real)

    clock.at(utc(2026, 1, 10, 2, 0, 5))
    triggered = engine.trigger("nightly")
    assert ids(engine) == ["nightly@2026-01-10T02:00:00Z", triggered.id]
    (s,) = engine.schedules()
    assert (s.pending, s.last_id) == (None, triggered.id)
    engine.tick()
    assert len(RUNS) == 2  # nothing started twice


def test_a_trigger_whose_start_fails_leaves_no_fire_for_a_worker(
    engine: Engine, clock: Clock
) -> None:
    engine.schedule("nightly", Report, "0 2 * * *")
    bare = Engine(engine.store, clock=clock)  # knows no workflow
    with pytest.raises(StmtflowError, match="workflow type 'Report' is not registered"):
        bare.trigger("nightly")
    assert engine.schedules()[0].pending is None
    engine.tick()  # 01:59: the 02:00 fire is not due, and the failed trigger is not retried
    assert ids(engine) == [] and RUNS == []


def test_a_trigger_racing_a_fire_loses_neither(
    engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.schedule("nightly", Report, "0 2 * * *")
    clock.at(utc(2026, 1, 10, 2, 0, 1))
    other = Engine(engine.store, workflows=WORKFLOWS, clock=clock)
    put = engine.store.put_schedule
    raced: list[int] = []

    def fire_first(row: Any, *, expected_version: int) -> Any:
        if not raced:  # the trigger's first write: another worker's fire lands just before it
            raced.append(0)
            raced.append(_schedules.fire_due(other, clock.now, WorkerStats()))
        return put(row, expected_version=expected_version)

    monkeypatch.setattr(engine.store, "put_schedule", fire_first)
    triggered = engine.trigger("nightly")
    assert raced == [0, 1]
    fired = "nightly@2026-01-10T02:00:00Z"
    assert triggered.id == "nightly@2026-01-10T02:00:01Z"
    assert ids(engine) == [fired, triggered.id]
    (s,) = engine.schedules()
    assert s.pending is None and s.next_fire == utc(2026, 1, 11, 2, 0)  # the fire's, kept
    assert s.last_id in (fired, triggered.id)
    engine.tick()
    assert sorted(RUNS) == [fired, triggered.id]  # nothing started twice


def test_backfill_starts_each_fire_in_the_range_once_also_over_fired_times(
    engine: Engine, clock: Clock
) -> None:
    engine.schedule("nightly", Report, "0 2 * * *")
    clock.at(utc(2026, 1, 10, 2, 0, 1))
    engine.tick()  # fires 10 January
    started = engine.backfill("nightly", utc(2026, 1, 7, 2, 0), utc(2026, 1, 11))
    assert started == [f"nightly@2026-01-{d:02}T02:00:00Z" for d in (7, 8, 9, 10)]
    again = engine.backfill("nightly", utc(2026, 1, 6), utc(2026, 1, 9, 2, 0))  # end excluded
    assert again == [f"nightly@2026-01-{d:02}T02:00:00Z" for d in (6, 7, 8)]
    assert ids(engine) == [f"nightly@2026-01-{d:02}T02:00:00Z" for d in (6, 7, 8, 9, 10)]
    assert sorted(RUNS) == ids(engine)  # each ran once

    with pytest.raises(ScheduleError, match="before start"):
        engine.backfill("nightly", utc(2026, 1, 9), utc(2026, 1, 8))
    with pytest.raises(ScheduleError, match="more than"):
        engine.backfill("nightly", utc(2000, 1, 1), utc(2060, 1, 1))
    assert len(ids(engine)) == 5


def test_unschedule_removes_it_and_keeps_its_instances(engine: Engine, clock: Clock) -> None:
    engine.schedule("nightly", Report, "0 2 * * *")
    clock.at(utc(2026, 1, 10, 2, 0, 1))
    engine.tick()
    engine.unschedule("nightly")
    assert engine.schedules() == []
    clock.at(utc(2026, 1, 11, 2, 0, 1))
    engine.tick()
    assert ids(engine) == ["nightly@2026-01-10T02:00:00Z"]


def test_scheduling_a_name_again_replaces_it(engine: Engine, clock: Clock) -> None:
    engine.schedule("r", Report, "0 2 * * *")
    s = engine.schedule("r", Report, "0 3 * * *", input={"title": "late"}, overlap="allow")
    assert [(x.cron, x.overlap, x.input) for x in engine.schedules()] == [
        ("0 3 * * *", "allow", {"title": "late"})
    ]
    assert s.next_fire == utc(2026, 1, 10, 3, 0)


def test_schedules_survive_reopening_the_store(url: str, clock: Clock) -> None:
    if url == "memory://":
        pytest.skip("nothing survives a memory store")
    with Engine(url, workflows=WORKFLOWS, clock=clock) as first:
        first.schedule("nightly", Report, "0 2 * * *", timezone="Europe/Paris")
    with Engine(url, workflows=WORKFLOWS, clock=clock) as second:
        (s,) = second.schedules()
        assert (s.name, s.timezone, s.next_fire) == ("nightly", "Europe/Paris", utc(2026, 1, 11, 1))


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cron": "61 * * * *"}, "bad cron expression '61 \\* \\* \\* \\*'"),
        ({"cron": "every day"}, "bad cron expression"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"workflow": "Nope"}, "workflow type 'Nope' is not registered"),
        ({"overlap": "queue"}, "unknown overlap 'queue'"),
        ({"catchup": timedelta(seconds=-1)}, "catchup must be a timedelta of zero or more"),
        ({"input": {"title": 3}}, "input does not fit workflow Report"),
        ({"name": "no spaces"}, "name 'no spaces' must be"),
        ({"name": "a@b"}, "name 'a@b' must be"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_nothing_stored(
    engine: Engine, change: dict[str, Any], message: str
) -> None:
    engine.schedule("keep", Report, "0 2 * * *")
    args: dict[str, Any] = {"name": "keep", "workflow": Report, "cron": "0 5 * * *", **change}
    with pytest.raises(ScheduleError, match=message):
        engine.schedule(args.pop("name"), args.pop("workflow"), args.pop("cron"), **args)
    assert [(s.name, s.cron) for s in engine.schedules()] == [("keep", "0 2 * * *")]


def test_an_unknown_schedule_name_is_not_found(engine: Engine) -> None:
    for call in (
        lambda: engine.unschedule("nope"),
        lambda: engine.pause_schedule("nope"),
        lambda: engine.resume_schedule("nope"),
        lambda: engine.trigger("nope"),
        lambda: engine.backfill("nope", T0, T0),
    ):
        with pytest.raises(NotFound, match="no schedule named 'nope'"):
            call()
    assert engine.list() == []


def test_fire_id_format() -> None:
    assert fire_id("a.b-c", datetime(2026, 3, 8, 3, 0, tzinfo=UTC)) == "a.b-c@2026-03-08T03:00:00Z"

"""`WorkflowHarness.schedule`: a scheduled workflow's fires on the harness's fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import stmtflow as sf
from stmtflow.errors import ScheduleError
from stmtflow.testing import HarnessError, WorkflowHarness

T0 = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)


class SalesReport(sf.WorkflowState):
    """Sums a night's sales; notes when its step ran (the fake clock)."""

    region: str = "EU"
    ran_at: str = ""

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("sum", self.sum))

    def sum(self) -> None:
        self.ran_at = sf.current_time().isoformat()


class Flaky(sf.WorkflowState):
    """Fails its first attempt, retries a minute later, then sleeps an hour."""

    done: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step(
                "call",
                self.call,
                retry=sf.RetryPolicy(max_attempts=3, initial_interval=timedelta(minutes=1)),
            ),
            sf.Sleep("cool_down", timedelta(hours=1)),
            sf.Step("finish", self.finish),
        )

    def call(self) -> None:
        if sf.current_step().attempt == 1:
            raise ConnectionError("not yet")

    def finish(self) -> None:
        self.done = True


class Held(sf.WorkflowState):
    """Waits until its ``done`` event arrives."""

    def definition(self) -> sf.Section:
        return sf.S(sf.Wait("hold", sf.OnEvent("done", lambda _: None)))


class Broken(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("boom", self.boom))

    def boom(self) -> None:
        raise ValueError("no data for that night")


def test_advance_fires_a_schedule_at_each_fire_time_in_local_time() -> None:
    h = WorkflowHarness(SalesReport, data={"region": "NA"}, start=T0)
    h.schedule("nightly", "30 2 * * *", timezone="Europe/Paris")
    assert h.advance(timedelta(days=3)) == [] and h.now == T0 + timedelta(days=3)
    # 29 March 2026: Paris moves to summer time; 02:30 does not exist, the fire is at 03:00.
    fires = ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    assert [(i.id, i.status, i.data.region) for i in h.fires()] == [
        (f"nightly@{at}", sf.WorkflowStatus.FINISHED, "NA") for at in fires
    ]
    assert [i.data.ran_at for i in h.fires()] == [
        at.replace("Z", "+00:00") for at in fires
    ]  # each ran at its fire time: the clock stopped there


def test_a_fires_retries_and_timers_are_served_by_the_same_advance() -> None:
    h = WorkflowHarness(Flaky, start=T0)
    h.schedule("hourly", "0 * * * *", overlap="allow")
    h.advance(timedelta(minutes=30))  # 12:30: nothing due yet
    assert h.fires() == []
    h.advance(timedelta(hours=1))  # 13:00 fires; its retry at 13:01; its sleep ends at 14:01
    [first] = h.fires()
    assert first.id == "hourly@2026-03-27T13:00:00Z" and first.status is sf.WorkflowStatus.WAITING
    h.advance(timedelta(hours=1))  # to 14:30
    assert [(i.id[7:], i.status.value, i.data.done) for i in h.fires()] == [
        ("2026-03-27T13:00:00Z", "finished", True),
        ("2026-03-27T14:00:00Z", "waiting", False),  # its sleep ends at 15:01
    ]
    kinds = [e.kind for e in h.engine.history(first.id)]
    assert kinds.count("retry_scheduled") == 1 and kinds.count("timer_fired") == 1


def test_a_fire_held_by_buffer_one_starts_once_the_running_instance_ends() -> None:
    h = WorkflowHarness(Held, start=T0)
    h.schedule("hold", "0 * * * *", overlap="buffer_one")
    h.advance(timedelta(hours=3, minutes=30))  # 13:00 starts; 14:00 is held; 15:00 dropped
    assert [i.id for i in h.fires()] == ["hold@2026-03-27T13:00:00Z"]
    h.send("done", to="hold@2026-03-27T13:00:00Z")
    h.advance(timedelta(minutes=1))
    assert [(i.id, i.status.value) for i in h.fires()] == [
        ("hold@2026-03-27T13:00:00Z", "finished"),
        ("hold@2026-03-27T14:00:00Z", "waiting"),
    ]


def test_the_harness_instance_and_its_schedule_share_the_store_and_the_clock() -> None:
    h = WorkflowHarness(SalesReport, start=T0).start()
    h.schedule("nightly", "30 2 * * *", input={"region": "APAC"})
    triggered = h.engine.trigger("nightly")  # on the fake clock, as the fire at its second
    assert triggered.id == "nightly@2026-03-27T12:00:00Z"
    h.advance(timedelta(days=1))
    assert [(i.id, i.data.region) for i in h.fires()] == [
        ("nightly@2026-03-27T12:00:00Z", "APAC"),
        ("nightly@2026-03-28T02:30:00Z", "APAC"),
    ]
    assert h.log == ["sum"]  # the harness's own instance: the fires' steps are theirs


def test_advance_needs_a_started_instance_or_a_schedule() -> None:
    with pytest.raises(HarnessError, match=r"call start\(\) before advance\(\)"):
        WorkflowHarness(SalesReport).advance(timedelta(days=1))


def test_a_fire_that_fails_fails_the_test_naming_the_schedule() -> None:
    h = WorkflowHarness(Broken, start=T0)  # no default retry: a failing step is an error
    h.schedule("nightly", "0 2 * * *")
    with pytest.raises(HarnessError, match=r"schedule nightly: .*no data for that night"):
        h.advance(timedelta(days=1))
    assert h.now == datetime(2026, 3, 28, 2, 0, tzinfo=UTC)  # stopped at the fire


def test_a_bad_schedule_is_refused_and_nothing_stored() -> None:
    h = WorkflowHarness(SalesReport, start=T0)
    with pytest.raises(ScheduleError, match="bad cron expression"):
        h.schedule("nightly", "every night")
    with pytest.raises(ScheduleError, match="input does not fit workflow SalesReport"):
        h.schedule("nightly", "0 2 * * *", input={"region": 3})
    assert h.engine.schedules() == []

"""`Sleep`: a `Wait` on one `Timer` event named ``f"{name}.timer"``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import stmtflow as sf
from stmtflow.core._timers import due_timers, next_wakeup

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


class CoolOff(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("order", lambda: self.log.append("order")),
            sf.Sleep("cool_off", timedelta(days=3)),
            sf.Step("charge", lambda: self.log.append("charge")),
        )


def test_sleep_arms_one_timer_event_named_after_it() -> None:
    wf = CoolOff()
    state = sf.resume(wf, sf.new_state("wf-1", CoolOff), now=NOW)

    assert wf.log == ["order"]
    assert state.status is sf.WorkflowStatus.WAITING
    (main,) = state.threads
    assert main.cur_step == "cool_off"
    assert main.status is sf.ThreadStatus.WAITING_EVENT
    (event,) = main.wait_events
    assert event.type == "Timer"
    assert event.req.name == "cool_off.timer"
    assert event.status is sf.WaitEventStatus.SETUP


def test_the_timer_deadline_is_now_plus_the_duration() -> None:
    wf = CoolOff()
    state = sf.resume(wf, sf.new_state("wf-1", CoolOff), now=NOW)

    (event,) = state.threads[0].wait_events
    assert datetime.fromisoformat(event.req.setup_data) == NOW + timedelta(days=3)
    assert next_wakeup(state) == NOW + timedelta(days=3)


def test_the_timer_is_due_at_its_deadline_and_not_before() -> None:
    wf = CoolOff()
    state = sf.resume(wf, sf.new_state("wf-1", CoolOff), now=NOW)

    assert due_timers(state, NOW + timedelta(days=3) - timedelta(seconds=1)) == []
    (due,) = due_timers(state, NOW + timedelta(days=3))
    assert (due.name, due.thread_id) == ("cool_off.timer", "_main_")


def test_delivering_the_timer_event_moves_on() -> None:
    wf = CoolOff()
    state = sf.resume(wf, sf.new_state("wf-1", CoolOff), now=NOW)

    sf.handle_callback("cool_off.timer", wf, state, now=NOW + timedelta(days=3))
    sf.resume(wf, state, now=NOW + timedelta(days=3))

    assert wf.log == ["order", "charge"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_resuming_a_sleeping_workflow_before_the_timer_fires_changes_nothing() -> None:
    wf = CoolOff()
    state = sf.resume(wf, sf.new_state("wf-1", CoolOff), now=NOW)
    before = (wf.model_dump_json(), state.model_dump_json())

    sf.resume(wf, state, now=NOW + timedelta(days=10))

    assert (wf.model_dump_json(), state.model_dump_json()) == before


class Naps(sf.WorkflowState):
    """A sleep in a loop: each iteration arms a fresh timer with its own deadline."""

    naps: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "nap_loop",
                lambda: self.naps < 2,
                sf.Sleep("nap", timedelta(minutes=5)),
                sf.Step("wake", self.wake),
            ),
        )

    def wake(self) -> None:
        self.naps += 1


def test_a_sleep_in_a_loop_arms_a_new_timer_each_iteration() -> None:
    wf = Naps()
    state = sf.resume(wf, sf.new_state("wf-1", Naps), now=NOW)
    first = state.threads[0].wait_events[0].req
    later = NOW + timedelta(minutes=5)

    sf.handle_callback(first, wf, state, now=later)
    sf.resume(wf, state, now=later)
    second = state.threads[0].wait_events[0].req

    assert second.pc > first.pc
    assert datetime.fromisoformat(second.setup_data) == later + timedelta(minutes=5)
    with pytest.raises(sf.StaleCallback):
        sf.handle_callback(first, wf, state, now=later)

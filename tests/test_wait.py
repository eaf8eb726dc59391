"""`Wait` / `On` / `OnEvent`: block until one event arrives, then run that event's body.

DESIGN §2 (Wait, On, OnEvent) and §3.5-3.7, §3.12 (a wait arms its events with the thread's pc).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class Order(sf.WorkflowState):
    """Waits for payment, cancellation or a timeout; each has its own body."""

    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            self.note("reserve"),
            sf.Wait(
                "payment",
                sf.OnEvent("paid", self.on_paid, self.note("ship")),
                sf.OnEvent("cancelled", lambda: self.log.append("cancel"), self.note("refund")),
                sf.On("timeout", sf.Timer(hours=24)),
            ),
            self.note("close"),
        )

    def note(self, name: str) -> sf.Step:
        return sf.Step(name, lambda: self.log.append(name))

    def on_paid(self, amount: int) -> str:
        self.log.append(f"paid {amount}")
        return "thanks"


def started(wf: sf.WorkflowState, state_id: str = "order-1") -> sf.State:
    state = sf.new_state(state_id, type(wf))
    sf.resume(wf, state, now=NOW)
    return state


def test_resume_stops_at_the_wait_with_its_events_armed() -> None:
    wf = Order()
    kinds: list[sf.CheckpointType] = []
    state = sf.new_state("order-1", Order)
    sf.resume(wf, state, kinds.append, now=NOW)
    assert wf.log == ["reserve"]
    assert state.status is sf.WorkflowStatus.WAITING
    [main] = state.threads
    assert (main.status, main.cur_step, main.cur_callback) == (
        sf.ThreadStatus.WAITING_EVENT,
        "payment",
        None,
    )
    assert [(e.type, e.req.name, e.status) for e in main.wait_events] == [
        ("FunctionHandler", "paid", sf.WaitEventStatus.SETUP),
        ("FunctionHandler", "cancelled", sf.WaitEventStatus.SETUP),
        ("Timer", "timeout", sf.WaitEventStatus.SETUP),
    ]
    for event in main.wait_events:
        assert (event.req.workflow_id, event.req.thread_id, event.req.pc) == (
            "order-1",
            sf.MAIN_THREAD,
            main.pc,
        )
        assert (event.handled, event.error) == (False, None)
    assert main.wait_events[2].req.setup_data == (NOW + timedelta(hours=24)).isoformat()
    # entering, the step, moving to the wait, then the timer's setup (the others have none)
    assert kinds == [
        sf.CheckpointType.AFTER_RESUME,
        sf.CheckpointType.AFTER_STEP,
        sf.CheckpointType.AFTER_RESUME,
        sf.CheckpointType.AFTER_SETUP,
    ]


def test_resuming_a_waiting_workflow_runs_nothing() -> None:
    wf = Order()
    state = started(wf)
    before = state.model_dump_json()
    sf.resume(wf, state, now=NOW + timedelta(hours=1))
    assert state.model_dump_json() == before
    assert wf.log == ["reserve"]


def test_only_the_fired_events_body_runs_then_the_thread_goes_on() -> None:
    wf = Order()
    state = started(wf)
    assert sf.handle_callback("paid", wf, state, 12) == "thanks"
    [main] = state.threads
    assert (main.status, main.cur_callback, main.wait_events) == (
        sf.ThreadStatus.RESUMING,
        "paid",
        (),
    )
    sf.resume(wf, state, now=NOW)
    assert wf.log == ["reserve", "paid 12", "ship", "close"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_cur_callback_is_kept_until_the_thread_entered_the_events_body() -> None:
    wf = Order()
    state = started(wf)
    sf.handle_callback("cancelled", wf, state)
    seen: list[tuple[str, str | None]] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        if state.threads:
            seen.append((state.threads[0].cur_step, state.threads[0].cur_callback))

    sf.resume(wf, state, checkpoint, now=NOW)
    assert seen[0] == ("refund", None)
    assert wf.log == ["reserve", "cancel", "refund", "close"]


def test_an_event_with_no_body_continues_after_the_wait() -> None:
    wf = Order()
    state = started(wf)
    assert sf.handle_callback("timeout", wf, state) is None
    sf.resume(wf, state, now=NOW)
    assert wf.log == ["reserve", "close"]


def test_a_waiting_workflow_survives_a_json_round_trip() -> None:
    wf = Order()
    state = started(wf)
    wf2 = Order.model_validate_json(wf.model_dump_json())
    state2 = sf.load_state(state.model_dump_json())
    sf.handle_callback("paid", wf2, state2, 3)
    sf.resume(wf2, state2, now=NOW)
    assert wf2.log == ["reserve", "paid 3", "ship", "close"]


class Poll(sf.WorkflowState):
    """A wait inside a loop is armed again, with a new pc, in every iteration."""

    seen: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "poll",
                lambda: "stop" not in self.seen,
                sf.Step("ask", lambda: None),
                sf.Wait("reply", sf.OnEvent("answer", self.seen.append)),
            )
        )


def test_a_wait_arms_its_events_with_the_threads_pc_in_each_iteration() -> None:
    wf, state = Poll(), sf.new_state("poll-1", Poll)
    pcs = []
    for answer in ("a", "b", "stop"):
        sf.resume(wf, state, now=NOW)
        [main] = state.threads
        [event] = main.wait_events
        assert event.req.pc == main.pc
        pcs.append(event.req.pc)
        sf.handle_callback("answer", wf, state, answer)
    sf.resume(wf, state, now=NOW)
    assert pcs == sorted(set(pcs))
    assert wf.seen == ["a", "b", "stop"]
    assert state.status is sf.WorkflowStatus.FINISHED


class Recorder(sf.BaseHandler):
    def __init__(self, calls: list[tuple[str, bool]]) -> None:
        self.calls = calls

    def handle(self, req: sf.CallbackRequest, input: Any) -> None:
        return None

    def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        self.calls.append((req.name, handled))


def test_when_main_ends_a_waiting_thread_ends_and_its_events_are_torn_down() -> None:
    calls: list[tuple[str, bool]] = []

    class Main(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(
                sf.Go("nag", sf.S(sf.Wait("nag_wait", sf.On("nag_stop", Recorder(calls))))),
                sf.Wait("done", sf.OnEvent("finish", lambda: None)),
            )

    wf, state = Main(), sf.new_state("main-1", Main)
    sf.resume(wf, state, now=NOW)
    assert [t.id for t in state.threads] == [sf.MAIN_THREAD, "nag"]
    sf.handle_callback("finish", wf, state)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.FINISHED
    assert state.threads == [] and state.teardowns == []
    assert calls == [("nag_stop", False)]

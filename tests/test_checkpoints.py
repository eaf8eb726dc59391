"""Checkpoints: which unit of progress each call follows, and how ``pc`` counts (DESIGN §3.12).

`after_step` after each step; `after_resume` after each scheduling move of a thread (starting,
advancing to its next position, ending); `after_condition` when a `WaitFor` became true;
`after_setup` / `after_teardown` after each event's successful setup / teardown. ``State.pc``
strictly increases with every unit of progress, each thread's ``pc`` with its own, and a `Wait`
arms its events with the thread's ``pc`` at that moment.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, ClassVar

import pytest
from golden import assert_json_snapshot

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)

AFTER_STEP = sf.CheckpointType.AFTER_STEP
AFTER_RESUME = sf.CheckpointType.AFTER_RESUME
AFTER_SETUP = sf.CheckpointType.AFTER_SETUP
AFTER_TEARDOWN = sf.CheckpointType.AFTER_TEARDOWN
AFTER_CONDITION = sf.CheckpointType.AFTER_CONDITION


class Order(sf.WorkflowState):
    """The example of DESIGN §1 and docs/concepts.md, whose checkpoints the docs list."""

    paid: bool = False
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", self.reserve),
            sf.Go("reminders", sf.S(sf.Step("remind", self.remind))),
            sf.Wait(
                "payment",
                sf.OnEvent("paid", self.on_paid),
                sf.On("timeout", sf.Timer(hours=24), sf.Return()),
            ),
            sf.If(self.paid, sf.Step("ship", self.ship)).Else(sf.Step("refund", self.refund)),
        )

    def reserve(self) -> None:
        self.log.append("reserve")

    def remind(self) -> None:
        self.log.append("remind")

    def ship(self) -> None:
        self.log.append("ship")

    def refund(self) -> None:
        self.log.append("refund")

    def on_paid(self, amount: int) -> str:
        self.paid = True
        return "thanks"


class Recorder:
    """Calls the checkpoint of every unit of progress, keeping a copy of the state at each."""

    def __init__(self, wf: sf.WorkflowState, state: sf.State) -> None:
        self.wf, self.state = wf, state
        self.kinds: list[sf.CheckpointType] = []
        self.states: list[sf.State] = []

    def __call__(self, kind: sf.CheckpointType) -> None:
        self.kinds.append(kind)
        self.states.append(self.state.model_copy(deep=True))

    def positions(self) -> list[tuple[str, int, list[str]]]:
        return [
            (
                kind.value,
                state.pc,
                [f"{t.id}:{t.status.value}@{t.cur_step}" for t in state.threads],
            )
            for kind, state in zip(self.kinds, self.states, strict=True)
        ]


def run_order() -> tuple[Order, sf.State, Recorder]:
    wf = Order()
    state = sf.new_state("order-1", Order)
    recorder = Recorder(wf, state)
    sf.resume(wf, state, recorder, now=NOW)
    sf.handle_callback(
        sf.CallbackRequest(workflow_id="order-1", name="paid"), wf, state, 42, now=NOW
    )
    sf.resume(wf, state, recorder, now=NOW + timedelta(minutes=5))
    return wf, state, recorder


def test_the_documented_order_checkpoints_in_this_exact_sequence() -> None:
    wf, state, recorder = run_order()

    payment = "_main_:waiting_event@payment"
    assert recorder.positions() == [
        ("after_resume", 1, ["_main_:executing@reserve"]),
        ("after_step", 2, ["_main_:resuming@reserve"]),
        ("after_resume", 3, [payment, "reminders:resuming@"]),
        ("after_setup", 4, [payment, "reminders:resuming@"]),
        ("after_resume", 5, [payment, "reminders:executing@remind"]),
        ("after_step", 6, [payment, "reminders:resuming@remind"]),
        ("after_resume", 7, [payment]),
        # handle_callback("paid", 42): pc 8, no checkpoint (the caller persists)
        ("after_resume", 9, ["_main_:executing@ship"]),
        ("after_step", 10, ["_main_:resuming@ship"]),
        ("after_resume", 11, []),
    ]
    assert wf.log == ["reserve", "remind", "ship"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_the_state_at_every_checkpoint_of_the_order_matches_its_snapshot() -> None:
    _, _, recorder = run_order()

    assert_json_snapshot(
        [
            {"checkpoint": kind.value, "state": json.loads(state.model_dump_json())}
            for kind, state in zip(recorder.kinds, recorder.states, strict=True)
        ],
        "checkpoints/order.json",
    )


class Webhook:
    """A handler with setup and teardown (unlike `FunctionHandler` and `Timer`)."""

    type = "Webhook"
    calls: ClassVar[list[str]] = []

    def setup(self, req: sf.CallbackRequest) -> str:
        self.calls.append(f"setup {req.name}")
        return f"https://hooks.example/{req.name}"

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        return input

    def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        self.calls.append(f"teardown {req.name} handled={handled}")


class Approval(sf.WorkflowState):
    """Main waits on two webhooks; a helper thread waits for the decision, then records it."""

    decided: bool = False
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go(
                "recorder",
                sf.S(
                    sf.WaitFor("decided", lambda: self.decided),
                    sf.Step("record", lambda: self.log.append("record")),
                ),
            ),
            sf.Wait("decision", sf.On("approve", Webhook()), sf.On("reject", Webhook())),
            sf.Step("decide", self.decide),
            sf.WaitFor("recorded", lambda: "record" in self.log),
        )

    def decide(self) -> None:
        self.decided = True


@pytest.fixture
def approval() -> tuple[Approval, sf.State, Recorder]:
    Webhook.calls = []
    wf = Approval()
    state = sf.new_state("approval-1", Approval)
    recorder = Recorder(wf, state)
    sf.resume(wf, state, recorder, now=NOW)
    sf.handle_callback("approve", wf, state, {"by": "ann"}, now=NOW)
    sf.resume(wf, state, recorder, now=NOW)
    return wf, state, recorder


def test_setup_teardown_and_condition_checkpoints_in_this_exact_sequence(
    approval: tuple[Approval, sf.State, Recorder],
) -> None:
    _, state, recorder = approval

    assert recorder.kinds == [
        AFTER_RESUME,  # main: starts "recorder", stands at the wait "decision"
        AFTER_SETUP,  # approve
        AFTER_SETUP,  # reject
        AFTER_RESUME,  # recorder: stands at the condition "decided"
        # --- handle_callback("approve"), then resume:
        AFTER_TEARDOWN,  # approve (handled)
        AFTER_TEARDOWN,  # reject
        AFTER_RESUME,  # main: enters the body of "approve" (empty), stands at "decide"
        AFTER_STEP,  # decide
        AFTER_RESUME,  # main: stands at the condition "recorded"
        AFTER_CONDITION,  # "decided" is true: recorder wakes
        AFTER_RESUME,  # recorder: stands at "record"
        AFTER_STEP,  # record
        AFTER_RESUME,  # recorder ends
        AFTER_CONDITION,  # "recorded" is true: main wakes
        AFTER_RESUME,  # main ends
    ]
    assert Webhook.calls == [
        "setup approve",
        "setup reject",
        "teardown approve handled=True",
        "teardown reject handled=False",
    ]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_state_pc_strictly_increases_across_checkpoints(
    approval: tuple[Approval, sf.State, Recorder],
) -> None:
    _, _, recorder = approval

    pcs = [state.pc for state in recorder.states]
    assert all(a < b for a, b in pairwise(pcs))


def test_each_thread_pc_strictly_increases_with_its_own_progress(
    approval: tuple[Approval, sf.State, Recorder],
) -> None:
    _, _, recorder = approval
    last: dict[str, tuple[int, str, str]] = {}

    for state in recorder.states:
        for thread in state.threads:
            assert thread.pc <= state.pc
            position = (thread.pc, thread.status.value, thread.cur_step)
            if thread.id in last:
                pc, status, step = last[thread.id]
                if (status, step) != position[1:]:
                    assert thread.pc > pc, f"{thread.id} moved without its pc increasing"
                else:
                    assert thread.pc >= pc
            last[thread.id] = position
    assert set(last) == {"_main_", "recorder"}


def test_a_wait_arms_its_events_with_the_thread_pc(
    approval: tuple[Approval, sf.State, Recorder],
) -> None:
    _, _, recorder = approval
    armed = recorder.states[recorder.kinds.index(AFTER_SETUP)]

    main = armed.thread(sf.MAIN_THREAD)
    assert main is not None
    assert [(e.req.name, e.req.pc, e.req.thread_id) for e in main.wait_events] == [
        ("approve", main.pc, "_main_"),
        ("reject", main.pc, "_main_"),
    ]
    assert all(e.req.workflow_id == "approval-1" for e in main.wait_events)


def test_the_setup_data_is_stored_with_the_request(
    approval: tuple[Approval, sf.State, Recorder],
) -> None:
    _, _, recorder = approval
    armed = recorder.states[recorder.kinds.index(AFTER_TEARDOWN) - 1]

    main = armed.thread(sf.MAIN_THREAD)
    assert main is not None
    assert [(e.req.setup_data, e.status) for e in main.wait_events] == [
        ("https://hooks.example/approve", sf.WaitEventStatus.SETUP),
        ("https://hooks.example/reject", sf.WaitEventStatus.SETUP),
    ]

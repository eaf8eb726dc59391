"""`stmtflow.testing.WorkflowHarness`: a workflow in memory with a fake clock (issue 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import PrivateAttr

import stmtflow as sf
from stmtflow.testing import DEFAULT_START, HarnessError, PendingEvent, WorkflowHarness

DAY = timedelta(days=1)


class Subscription(sf.WorkflowState):
    """Bills once a day for 30 days, sleeping between bills."""

    days: int = 30
    billed: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "daily",
                lambda: len(self.billed) < self.days,
                sf.Step("bill", self.bill),
                sf.Sleep("nap", DAY),
            ),
            sf.Step("close", lambda: None),
        )

    def bill(self) -> None:
        self.billed.append(sf.current_step().key)


def test_a_30_day_workflow_stops_the_clock_only_at_its_30_deadlines() -> None:
    h = WorkflowHarness(Subscription).start()
    assert h.log == ["bill"]
    assert h.pending() == [
        PendingEvent("nap.timer", sf.MAIN_THREAD, "Timer", None, DEFAULT_START + DAY, "setup"),
    ]
    stops: list[datetime] = []
    wake = h.engine.wake

    def counted(id: str) -> list[str]:
        stops.append(h.now)
        return wake(id)

    h.engine.wake = counted  # type: ignore[method-assign]

    fired = h.advance(timedelta(days=30))

    assert fired == ["nap.timer"] * 30
    assert h.log == ["bill"] * 30 + ["close"]
    assert h.status is sf.WorkflowStatus.FINISHED
    assert len(h.data.billed) == 30 and len(set(h.data.billed)) == 30
    # The clock jumped from deadline to deadline: 30 stops, one a day, none in between.
    assert stops == [DEFAULT_START + DAY * i for i in range(1, 31)]
    assert [run.at for run in h.trace] == [DEFAULT_START + DAY * i for i in range(30)] + [
        DEFAULT_START + DAY * 30
    ]
    assert h.now == DEFAULT_START + timedelta(days=30)


def test_advance_stops_at_each_due_time_and_no_further() -> None:
    h = WorkflowHarness(Subscription, data={"days": 3}).start()
    assert h.advance(timedelta(hours=23)) == []
    assert h.log == ["bill"]
    assert h.advance(timedelta(hours=1)) == ["nap.timer"]
    assert h.log == ["bill", "bill"]
    assert h.now == DEFAULT_START + DAY


class Racers(sf.WorkflowState):
    """Two threads sleeping for different times; the shorter sleep fires first."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go("slow", sf.S(sf.Sleep("long", timedelta(days=3)), sf.Step("slow_done", noop))),
            sf.Go("fast", sf.S(sf.Sleep("short", DAY), sf.Step("fast_done", noop))),
            sf.WaitFor("both", lambda: False),
        )


def noop() -> None:
    """A step action that does nothing."""


def test_timers_fire_in_deadline_order_across_threads() -> None:
    h = WorkflowHarness(Racers).start()
    assert [(p.name, p.thread_id) for p in h.pending()] == [
        ("long.timer", "slow"),
        ("short.timer", "fast"),
    ]

    assert h.advance(timedelta(days=5)) == ["short.timer", "long.timer"]

    assert [(run.step, run.thread, run.at) for run in h.trace] == [
        ("fast_done", "fast", DEFAULT_START + DAY),
        ("slow_done", "slow", DEFAULT_START + 3 * DAY),
    ]


class Flaky(sf.WorkflowState):
    """A step that fails ``failures`` times before it succeeds, with backoff 10s, 20s, ..."""

    failures: int = 2
    tries: int = 0

    def definition(self) -> sf.Section:
        policy = sf.RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=10))
        return sf.S(sf.Step("charge", self.charge, retry=policy), sf.Step("ship", noop))

    def charge(self) -> None:
        # Counting tries in the data would be rolled back with the failure; count outside.
        Flaky.calls.append(sf.current_step().attempt)
        if sf.current_step().attempt <= self.failures:
            raise ConnectionError(f"try {sf.current_step().attempt}")

    calls: Any = []


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    Flaky.calls = []


def test_retries_run_at_their_retry_times() -> None:
    h = WorkflowHarness(Flaky).start()
    assert h.log == []
    assert h.status.value == "waiting"
    assert h.pending() == []

    h.advance(timedelta(seconds=9))
    assert Flaky.calls == [1]
    h.advance(timedelta(seconds=1))
    assert Flaky.calls == [1, 2]
    h.advance(timedelta(seconds=20))

    assert Flaky.calls == [1, 2, 3]
    assert h.log == ["charge", "ship"]
    assert [(r.attempt, r.error, r.at - DEFAULT_START) for r in h.trace[:3]] == [
        (1, "ConnectionError: try 1", timedelta(0)),
        (2, "ConnectionError: try 2", timedelta(seconds=10)),
        (3, None, timedelta(seconds=30)),
    ]
    assert h.status is sf.WorkflowStatus.FINISHED


def test_retries_that_run_out_fail_the_workflow() -> None:
    h = WorkflowHarness(Flaky, data={"failures": 5}).start()
    h.advance(timedelta(hours=1))
    assert Flaky.calls == [1, 2, 3]
    assert h.status is sf.WorkflowStatus.FAILED
    assert h.state.error is not None and "try 3" in h.state.error
    assert h.log == []


class Approval(sf.WorkflowState):
    """Waits for a decision or a 24-hour timeout."""

    decision: str = ""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("ask", noop),
            sf.Wait(
                "decide",
                sf.OnEvent("approve", self.approve, sf.Step("notify", noop)),
                sf.On("timeout", sf.Timer(hours=24), sf.Step("escalate", noop)),
            ),
        )

    def approve(self, who: str) -> str:
        self.decision = f"approved by {who}"
        return "thanks"


def test_send_pending_and_log() -> None:
    h = WorkflowHarness(Approval).start()
    assert h.pending() == [
        PendingEvent(
            "approve", sf.MAIN_THREAD, "FunctionHandler", {"type": "string"}, None, "setup"
        ),
        PendingEvent(
            "timeout", sf.MAIN_THREAD, "Timer", None, DEFAULT_START + timedelta(hours=24), "setup"
        ),
    ]

    assert h.send("approve", "ana") == "thanks"

    assert h.data.decision == "approved by ana"
    assert h.log == ["ask", "notify"]
    assert h.pending() == []
    assert h.status is sf.WorkflowStatus.FINISHED
    assert sf.CheckpointType.AFTER_SETUP in h.checkpoints  # the timer was armed
    assert h.checkpoints.count(sf.CheckpointType.AFTER_STEP) == 2


def test_the_timeout_fires_when_no_one_answers() -> None:
    h = WorkflowHarness(Approval, start=datetime(2030, 5, 1, 9, tzinfo=UTC)).start()
    assert h.advance(timedelta(days=2)) == ["timeout"]
    assert h.log == ["ask", "escalate"]
    assert h.data.decision == ""


def test_library_errors_pass_through_unchanged() -> None:
    h = WorkflowHarness(Approval).start()
    with pytest.raises(sf.UnknownCallback):
        h.send("reject")
    with pytest.raises(sf.CallbackInputError):
        h.send("approve", 42)
    assert h.pending() and h.data.decision == ""
    h.send("approve", "ana")
    with pytest.raises(sf.WorkflowFinished):
        h.send("approve", "bob")


def test_misuse_is_a_harness_error() -> None:
    h = WorkflowHarness(Approval)
    with pytest.raises(HarnessError, match="start"):
        h.send("approve", "ana")
    h.start()
    with pytest.raises(HarnessError, match="already started"):
        h.start()
    with pytest.raises(ValueError, match="data"):
        WorkflowHarness(Approval(), data={"decision": "x"})
    with pytest.raises(ValueError, match="aware"):
        WorkflowHarness(Approval, start=datetime(2024, 1, 1))


class Invalid(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("twice", noop), sf.Step("twice", noop))


def test_a_definition_refused_at_start_leaves_the_harness_unstarted() -> None:
    h = WorkflowHarness(Invalid)
    with pytest.raises(sf.DefinitionError, match="twice"):
        h.start()
    assert h.pending() == []
    with pytest.raises(HarnessError, match="start"):
        h.send("anything")


class Twins(sf.WorkflowState):
    """Two threads from one ``Go`` in a loop, both waiting on the same event."""

    started: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "spawn",
                lambda: self.started < 2,
                sf.Step("count", self.count),
                sf.Go(
                    "twin",
                    sf.Wait("twin_wait", sf.OnEvent("go", noop, sf.Step("answer", noop))),
                    id=lambda: f"twin-{self.started}",
                ),
            ),
            sf.WaitFor("never", lambda: False),
        )

    def count(self) -> None:
        self.started += 1


def test_thread_id_picks_the_thread() -> None:
    h = WorkflowHarness(Twins).start()
    assert [(p.name, p.thread_id) for p in h.pending()] == [("go", "twin-1"), ("go", "twin-2")]
    with pytest.raises(sf.AmbiguousCallback):
        h.send("go")
    h.send("go", thread_id="twin-2")
    assert [(run.step, run.thread) for run in h.trace][-1] == ("answer", "twin-2")
    assert h.log == ["count", "count", "answer"]


class Leaky(sf.WorkflowState):
    """Keeps something outside its fields between steps: lost when the state is stored."""

    _cache: str = PrivateAttr(default="")
    seen: str = ""
    anything: Any = None

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("remember", self.remember),
            sf.Wait("later", sf.OnEvent("next", noop)),
            sf.Step("recall", self.recall),
        )

    def remember(self) -> None:
        self._cache = "kept in memory only"

    def recall(self) -> None:
        self.seen = self._cache


def test_the_harness_continues_from_the_stored_json_like_the_engine() -> None:
    h = WorkflowHarness(Leaky).start()
    h.send("next")
    assert h.data.seen == ""  # what was kept outside the fields did not survive the store


class Gate(sf.WorkflowState):
    """Answers a ping with its note, then waits until it is ready."""

    note: str = ""
    ready: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Wait("ask", sf.OnEvent("ping", self.ping)),
            sf.WaitFor("until_ready", lambda: self.ready),
            sf.Step("go", noop),
        )

    def ping(self) -> str:
        return self.note


def test_data_changed_by_hand_is_stored_before_the_next_call() -> None:
    h = WorkflowHarness(Gate).start()
    h.data.note = "set by the test"
    assert h.send("ping") == "set by the test"
    assert h.log == []
    h.data.ready = True
    h.resume()
    assert h.log == ["go"]
    assert h.engine.get("test").data.ready


def test_pending_events_are_the_engines() -> None:
    from stmtflow.runtime import PendingEvent as EnginePendingEvent

    assert PendingEvent is EnginePendingEvent
    h = WorkflowHarness(Approval).start()
    assert h.pending() == h.engine.pending("test")


class Unserializable(sf.WorkflowState):
    thing: Any = None

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("store_object", self.store), sf.Step("after", noop))

    def store(self) -> None:
        self.thing = object()


def test_persist_fails_at_the_checkpoint_that_made_bad_data() -> None:
    h = WorkflowHarness(Unserializable)
    with pytest.raises(HarnessError, match="after_step: the data cannot be serialized"):
        h.start()
    # Data and state stay as last stored, and the instance says why it stopped.
    assert h.data.thing is None
    assert h.state.pc == 0
    error = h.engine.get("test").error
    assert error is not None and "cannot be serialized" in error


def test_a_failing_step_leaves_the_last_checkpoint() -> None:
    class Once(sf.WorkflowState):
        broken: bool = True

        def definition(self) -> sf.Section:
            return sf.S(sf.Step("first", noop), sf.Step("fragile", self.fragile))

        def fragile(self) -> None:
            if self.broken:
                raise RuntimeError("down")

    h = WorkflowHarness(Once)
    with pytest.raises(sf.StepError):
        h.start()
    assert h.log == ["first"]
    h.data.broken = False
    h.resume()
    assert h.log == ["first", "fragile"]


def test_cancel() -> None:
    h = WorkflowHarness(Approval).start()
    assert h.cancel().status is sf.WorkflowStatus.CANCELLED
    assert h.pending() == []
    with pytest.raises(sf.WorkflowFinished):
        h.send("approve", "ana")


def test_an_existing_state_continues_on_a_new_definition() -> None:
    class Old(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Sleep("cool_off", DAY), sf.Step("charge", noop))

    class New(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(
                sf.Sleep("cool_off", DAY),
                sf.If(False, sf.Step("charge", noop)).Else(sf.Step("capture", noop)),
                sf.Step("receipt", noop),
            )

    old = WorkflowHarness(Old, id="o-7").start()
    new = WorkflowHarness(New, state=old.state, start=old.now)
    assert new.state.id == "o-7" and new.state is not old.state
    with pytest.raises(HarnessError, match="already started"):
        new.start()
    new.advance(DAY)
    assert new.log == ["capture", "receipt"]

"""`WaitFor`: block until a condition holds, then call the handler once (DESIGN §3.1, §3.9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def run(wf: sf.WorkflowState) -> sf.State:
    return sf.resume(wf, sf.new_state("wf-1", type(wf)), now=NOW)


class Gate(sf.WorkflowState):
    """Main waits until ``open``; a callback or someone outside opens it."""

    open: bool = False
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go("opener", sf.Wait("request", sf.OnEvent("open", self.open_gate))),
            sf.WaitFor("gate", lambda: self.open, self.passed),
            sf.Step("through", lambda: self.log.append("through")),
        )

    def open_gate(self) -> None:
        self.open = True

    def passed(self) -> None:
        self.log.append("passed")


def test_a_waitfor_blocks_while_its_condition_is_false() -> None:
    wf = Gate()
    state = run(wf)

    assert wf.log == []
    assert state.status is sf.WorkflowStatus.WAITING
    main = state.thread(sf.MAIN_THREAD)
    assert main is not None
    assert main.cur_step == "gate"
    assert main.status is sf.ThreadStatus.WAITING_CONDITION


def test_a_callback_that_makes_the_condition_true_wakes_the_thread() -> None:
    wf = Gate()
    state = run(wf)

    sf.handle_callback("open", wf, state, now=NOW)
    sf.resume(wf, state, now=NOW)

    assert wf.log == ["passed", "through"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_resume_on_a_waiting_workflow_rechecks_conditions_after_data_changed_outside() -> None:
    wf = Gate()
    state = run(wf)
    assert state.status is sf.WorkflowStatus.WAITING

    wf.open = True
    sf.resume(wf, state, now=NOW)

    assert wf.log == ["passed", "through"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_resume_on_a_waiting_workflow_whose_condition_is_still_false_changes_nothing() -> None:
    wf = Gate()
    state = run(wf)
    before = (wf.model_dump_json(), state.model_dump_json())

    sf.resume(wf, state, now=NOW)

    assert (wf.model_dump_json(), state.model_dump_json()) == before


class Counter(sf.WorkflowState):
    """A producer thread bumps ``count``; main waits until it reaches 3."""

    count: int = 0
    handled: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go(
                "producer",
                sf.For("produce", lambda: self.count < 5, sf.Step("bump", self.bump)),
            ),
            sf.WaitFor("three", lambda: self.count >= 3, self.on_three),
            sf.Wait("hold", sf.OnEvent("release", lambda: None)),
            sf.Step("main_after", lambda: self.log.append(f"main_after {self.count}")),
        )

    def bump(self) -> None:
        self.count += 1
        self.log.append(f"bump {self.count}")

    def on_three(self) -> None:
        self.handled += 1
        self.log.append(f"handler {self.count}")


def test_a_condition_set_by_another_thread_is_checked_when_no_thread_can_move() -> None:
    wf = Counter()
    state = run(wf)
    sf.handle_callback("release", wf, state, now=NOW)
    sf.resume(wf, state, now=NOW)

    assert wf.log == [
        "bump 1",
        "bump 2",
        "bump 3",
        "bump 4",
        "bump 5",
        "handler 5",
        "main_after 5",
    ]


def test_the_handler_is_called_once_when_the_condition_becomes_true() -> None:
    wf = Counter()
    state = run(wf)
    sf.resume(wf, state, now=NOW)
    sf.resume(wf, state, now=NOW)
    assert wf.handled == 1

    sf.handle_callback("release", wf, state, now=NOW)
    sf.resume(wf, state, now=NOW)
    assert wf.handled == 1


class FailingHandler(sf.WorkflowState):
    ready: bool = False
    log: list[str] = []
    attempts: ClassVar[int] = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("prepare", lambda: self.log.append("prepare")),
            sf.WaitFor("ready", lambda: self.ready, self.on_ready),
            sf.Step("after", lambda: self.log.append("after")),
        )

    def on_ready(self) -> None:
        self.log.append("handler")
        FailingHandler.attempts += 1
        if FailingHandler.attempts == 1:
            raise ValueError("not yet")


def test_a_failing_waitfor_handler_rolls_back_the_data_and_raises_execution_error() -> None:
    FailingHandler.attempts = 0
    wf = FailingHandler()
    state = run(wf)
    wf.ready = True
    before = (wf.model_dump_json(), state.model_dump_json())

    with pytest.raises(sf.ExecutionError) as caught:
        sf.resume(wf, state, now=NOW)

    assert isinstance(caught.value.__cause__, ValueError)
    assert "ready" in str(caught.value)
    assert (wf.model_dump_json(), state.model_dump_json()) == before

    sf.resume(wf, state, now=NOW)
    assert wf.log == ["prepare", "handler", "after"]


class ConditionRaises(sf.WorkflowState):
    armed: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("arm", self.arm),
            sf.WaitFor("broken", self.check),
        )

    def arm(self) -> None:
        self.armed = True

    def check(self) -> bool:
        raise ZeroDivisionError("bad condition")


def test_a_waitfor_condition_that_raises_is_an_execution_error_and_changes_nothing() -> None:
    wf = ConditionRaises()
    state = sf.new_state("wf-1", ConditionRaises)
    saved: list[tuple[str, str]] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        saved.append((wf.model_dump_json(), state.model_dump_json()))

    with pytest.raises(sf.ExecutionError) as caught:
        sf.resume(wf, state, checkpoint, now=NOW)

    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    assert saved[-1] == (wf.model_dump_json(), state.model_dump_json())


class EagerCondition(sf.WorkflowState):
    """An eager ``WaitFor`` condition: rebuilt with ``definition()`` after every action."""

    ready: bool = False
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go("setter", sf.Step("set", self.set_ready)),
            sf.WaitFor("ready", self.ready),
            sf.Step("after", lambda: self.log.append("after")),
        )

    def set_ready(self) -> None:
        self.ready = True


def test_an_eager_waitfor_condition_sees_what_another_thread_did() -> None:
    wf = EagerCondition()
    state = run(wf)

    assert wf.log == ["after"]
    assert state.status is sf.WorkflowStatus.FINISHED


class Died(BaseException):
    """A process dying inside user code (not an error the interpreter catches)."""


class HandlerDies(sf.WorkflowState):
    """A step sets the condition; the WaitFor's handler kills the process the first time."""

    ready: bool = False
    log: list[str] = []
    deaths: ClassVar[int] = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("open", self.open),
            sf.WaitFor("ready", lambda: self.ready, self.on_ready),
            sf.Step("after", lambda: self.log.append("after")),
        )

    def open(self) -> None:
        self.ready = True

    def on_ready(self) -> None:
        self.log.append("handler")
        if HandlerDies.deaths == 0:
            HandlerDies.deaths += 1
            raise Died()


def test_a_process_dying_in_a_waitfor_handler_leaves_an_instance_that_is_resumed(
    tmp_path: Path,
) -> None:
    from stmtflow.runtime import Engine

    HandlerDies.deaths = 0
    url = f"sqlite:///{tmp_path / 'wf.db'}"
    with Engine(url, [HandlerDies]) as engine, pytest.raises(Died):
        engine.start(HandlerDies, id="dies-1")
    later = datetime.now(UTC) + timedelta(minutes=5)  # the dead worker's lease lapsed
    with Engine(url, [HandlerDies], clock=lambda: later) as engine:
        stored = engine.get("dies-1")
        # Written before the handler ran: the thread was waking, so there is work now.
        assert stored.status is sf.WorkflowStatus.RESUMING and stored.wake_at is not None
        assert engine.tick() == 1
        done = engine.get("dies-1")
    assert done.status is sf.WorkflowStatus.FINISHED
    assert done.data.log == ["handler", "after"]  # type: ignore[attr-defined]

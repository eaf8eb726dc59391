"""`Step`: run an action, advance, checkpoint; a failing action leaves no trace (DESIGN §3.2).

Also `current_step()`: the idempotency key an action sees (DESIGN §2, §3.11).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import pytest
from pydantic import BaseModel

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class Boom(Exception):
    """What a failing action raises in these tests."""


class Checkpoints:
    """A checkpoint callback that keeps the JSON a caller would have persisted last."""

    def __init__(self, wf: sf.WorkflowState, state: sf.State) -> None:
        self.wf, self.state = wf, state
        self.kinds: list[sf.CheckpointType] = []
        self.data = wf.model_dump_json()
        self.saved = state.model_dump_json()

    def __call__(self, kind: sf.CheckpointType) -> None:
        self.kinds.append(kind)
        self.data = self.wf.model_dump_json()
        self.saved = self.state.model_dump_json()


class TwoSteps(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("first", lambda: self.log.append("first")),
            sf.Step("second", lambda: self.log.append("second")),
        )


def test_steps_run_in_order_and_the_workflow_finishes() -> None:
    wf = TwoSteps()
    state = sf.resume(wf, sf.new_state("wf-1", TwoSteps), now=NOW)

    assert wf.log == ["first", "second"]
    assert state.status is sf.WorkflowStatus.FINISHED
    assert state.threads == []


def test_a_finished_workflow_runs_nothing_again() -> None:
    wf = TwoSteps()
    state = sf.resume(wf, sf.new_state("wf-1", TwoSteps), now=NOW)
    sf.resume(wf, state, now=NOW)

    assert wf.log == ["first", "second"]


class Item(BaseModel):
    tags: list[str] = []


class Order(BaseModel):
    items: list[Item] = []


class Flaky(sf.WorkflowState):
    """``charge`` mutates nested data, then fails while ``broken`` is set."""

    log: list[str] = []
    orders: list[Order] = [Order(items=[Item(tags=["new"])])]
    counter: int = 0
    broken: bool = True

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", self.reserve),
            sf.Step("charge", self.charge),
            sf.Step("ship", lambda: self.log.append("ship")),
        )

    def reserve(self) -> None:
        self.log.append("reserve")
        self.counter += 1

    def charge(self) -> None:
        self.log.append("charge")
        self.counter += 1
        self.orders[0].items[0].tags.append("charged")
        self.orders.append(Order())
        if self.broken:
            raise Boom("card declined")


def test_a_failing_step_leaves_data_and_state_as_at_the_last_checkpoint() -> None:
    wf = Flaky()
    state = sf.new_state("wf-1", Flaky)
    saved = Checkpoints(wf, state)

    with pytest.raises(sf.StepError):
        sf.resume(wf, state, saved, now=NOW)

    assert wf.model_dump_json() == saved.data
    assert state.model_dump_json() == saved.saved
    assert wf.log == ["reserve"]
    assert wf.counter == 1
    assert wf.orders == [Order(items=[Item(tags=["new"])])]


def test_a_failing_step_keeps_the_thread_on_the_step_and_the_status_unchanged() -> None:
    wf = Flaky()
    state = sf.new_state("wf-1", Flaky)

    with pytest.raises(sf.StepError):
        sf.resume(wf, state, now=NOW)

    (main,) = state.threads
    assert main.cur_step == "charge"
    assert main.status is sf.ThreadStatus.EXECUTING
    assert state.status is sf.WorkflowStatus.RESUMING


def test_step_error_names_the_step_and_chains_the_cause() -> None:
    wf = Flaky()

    with pytest.raises(sf.StepError) as caught:
        sf.resume(wf, sf.new_state("wf-1", Flaky), now=NOW)

    assert caught.value.step == "charge"
    assert isinstance(caught.value.__cause__, Boom)
    assert "charge" in str(caught.value)
    assert "wf-1" in str(caught.value)
    assert "card declined" in str(caught.value)


def test_a_later_resume_runs_the_failed_step_again() -> None:
    wf = Flaky()
    state = sf.new_state("wf-1", Flaky)
    with pytest.raises(sf.StepError):
        sf.resume(wf, state, now=NOW)

    wf.broken = False
    sf.resume(wf, state, now=NOW)

    assert wf.log == ["reserve", "charge", "ship"]
    assert wf.orders[0].items[0].tags == ["new", "charged"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_a_failing_step_can_be_resumed_from_the_persisted_json() -> None:
    wf = Flaky()
    state = sf.new_state("wf-1", Flaky)
    saved = Checkpoints(wf, state)
    with pytest.raises(sf.StepError):
        sf.resume(wf, state, saved, now=NOW)

    wf = Flaky.model_validate_json(saved.data)
    wf.broken = False
    state = sf.load_state(saved.saved)
    sf.resume(wf, state, now=NOW)

    assert wf.log == ["reserve", "charge", "ship"]


class Keys(sf.WorkflowState):
    """Sends one message per step; what was sent lives outside the data, like a sent e-mail."""

    outbox: ClassVar[list[sf.StepInfo]] = []
    n: int = 0
    worked: bool = False
    failing_attempts: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go("worker", sf.S(sf.Step("work", self.work))),
            sf.For("loop", lambda: self.n < 2, sf.Step("tick", self.tick)),
            sf.Step("flaky", self.flaky),
            sf.WaitFor("worker_done", lambda: self.worked),
        )

    def send(self) -> None:
        self.outbox.append(sf.current_step())

    def work(self) -> None:
        self.send()
        self.worked = True

    def tick(self) -> None:
        self.send()
        self.n += 1

    def flaky(self) -> None:
        self.send()
        if sum(info.step == "flaky" for info in self.outbox) <= self.failing_attempts:
            raise Boom("try again")


@pytest.fixture
def outbox() -> list[sf.StepInfo]:
    Keys.outbox = []
    return Keys.outbox


def test_current_step_describes_the_running_step(outbox: list[sf.StepInfo]) -> None:
    sf.resume(Keys(), sf.new_state("wf-1", Keys), now=NOW)

    assert [(i.workflow_id, i.thread_id, i.step, i.attempt) for i in outbox] == [
        ("wf-1", "_main_", "tick", 1),
        ("wf-1", "_main_", "tick", 1),
        ("wf-1", "_main_", "flaky", 1),
        ("wf-1", "worker", "work", 1),
    ]


def test_current_step_keys_differ_across_loop_iterations_and_threads(
    outbox: list[sf.StepInfo],
) -> None:
    sf.resume(Keys(), sf.new_state("wf-1", Keys), now=NOW)

    keys = [info.key for info in outbox]
    assert len(keys) == 4
    assert len(set(keys)) == 4


def test_current_step_key_is_the_same_when_a_failed_step_runs_again(
    outbox: list[sf.StepInfo],
) -> None:
    wf = Keys(failing_attempts=1)
    state = sf.new_state("wf-1", Keys)
    with pytest.raises(sf.StepError):
        sf.resume(wf, state, now=NOW)
    sf.resume(wf, state, now=NOW)

    first, again = (info for info in outbox if info.step == "flaky")
    assert again.key == first.key


class Crash(Exception):
    """The process died: the checkpoint was never stored."""


def test_current_step_key_is_the_same_when_a_step_re_runs_after_a_crash(
    outbox: list[sf.StepInfo],
) -> None:
    wf = Keys()
    state = sf.new_state("wf-1", Keys)
    stored = {"data": wf.model_dump_json(), "state": state.model_dump_json()}

    def persist(kind: sf.CheckpointType) -> None:
        if kind is sf.CheckpointType.AFTER_STEP and state.threads[0].cur_step == "flaky":
            raise Crash
        stored.update(data=wf.model_dump_json(), state=state.model_dump_json())

    with pytest.raises(Crash):
        sf.resume(wf, state, persist, now=NOW)
    wf = Keys.model_validate_json(stored["data"])
    state = sf.load_state(stored["state"])
    sf.resume(wf, state, now=NOW)

    first, again = (info for info in outbox if info.step == "flaky")
    assert again.key == first.key
    assert state.status is sf.WorkflowStatus.FINISHED


def test_current_step_raises_outside_an_action() -> None:
    with pytest.raises(sf.StmtflowError, match="outside"):
        sf.current_step()


class PeekInCondition(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.If(lambda: sf.current_step() is not None, sf.Step("a", print)))


def test_current_step_raises_inside_a_condition() -> None:
    with pytest.raises(sf.ExecutionError):
        sf.resume(PeekInCondition(), sf.new_state("wf-1", PeekInCondition), now=NOW)


class Unstorable(sf.WorkflowState):
    """The first step puts a value JSON cannot hold into the data."""

    handle: object = None
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("open", self.open), sf.Step("use", lambda: self.log.append("use")))

    def open(self) -> None:
        self.handle = object()


def test_data_that_cannot_be_stored_is_an_execution_error_naming_the_workflow() -> None:
    wf, state = Unstorable(), sf.new_state("wf-1", Unstorable)
    with pytest.raises(sf.ExecutionError, match=r"wf-1.*cannot be stored as JSON"):
        sf.resume(wf, state, now=NOW)
    assert wf.log == []  # the next step did not run

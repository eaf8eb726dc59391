"""A stored state that no longer fits the definition is refused before anything runs (DESIGN §3.8).

Each test stores an `Order` mid-flight, then drives it with a changed release of the class. A
position, thread or event that is gone, or a name that is now a different kind of statement,
raises `DefinitionMismatch` naming it: no step, handler or setup runs, and nothing changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import pytest

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class Order(sf.WorkflowState):
    """Release 1: main waits for approval while a ``reminders`` thread waits to remind."""

    ran: ClassVar[list[str]] = []
    """Everything that ran, across releases (outside the data, so nothing can roll it back)."""
    approved: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            self.step("reserve"),
            sf.Go("reminders", sf.S(sf.Wait("remind_wait", self.on("remind")), self.step("nag"))),
            sf.Wait("approval", self.on("approve")),
            self.step("ship"),
        )

    def step(self, name: str) -> sf.Step:
        return sf.Step(name, lambda: self.ran.append(f"step {name}"))

    def on(self, event: str) -> sf.On:
        return sf.OnEvent(event, lambda: self.ran.append(f"handle {event}"))


@pytest.fixture(autouse=True)
def fresh_log() -> None:
    Order.ran = []


def stored() -> tuple[str, str]:
    """The data and state JSON of release 1, waiting for approval."""
    wf = Order()
    state = sf.resume(wf, sf.new_state("order-1", Order), now=NOW)
    assert Order.ran == ["step reserve"]
    Order.ran.clear()
    return wf.model_dump_json(), state.model_dump_json()


class StepNotRunYet(Exception):
    pass


def stored_before(step: str) -> tuple[str, str]:
    """The JSON of release 1 saved when main reached ``step`` but had not run it (a crash)."""
    wf = Order()
    state = sf.new_state("order-1", Order)
    sf.resume(wf, state, now=NOW)
    sf.handle_callback("approve", wf, state, now=NOW)
    saved: dict[str, str] = {}

    def checkpoint(kind: sf.CheckpointType) -> None:
        main = state.thread(sf.MAIN_THREAD)
        if main is not None and main.status is sf.ThreadStatus.EXECUTING:
            saved.update(data=wf.model_dump_json(), state=state.model_dump_json())
            raise StepNotRunYet

    with pytest.raises(StepNotRunYet):
        sf.resume(wf, state, checkpoint, now=NOW)
    assert sf.load_state(saved["state"]).threads[0].cur_step == step
    Order.ran.clear()
    return saved["data"], saved["state"]


def refuses(release: type[Order], stored_json: tuple[str, str], name: str) -> None:
    """Both ``resume`` and ``handle_callback`` refuse, naming ``name``, and change nothing."""
    data, state_json = stored_json
    wf, state = release.model_validate_json(data), sf.load_state(state_json)

    with pytest.raises(sf.DefinitionMismatch, match=repr(name)) as caught:
        sf.resume(wf, state, now=NOW)
    assert "order-1" in str(caught.value)

    with pytest.raises(sf.DefinitionMismatch, match=repr(name)):
        sf.handle_callback("approve", wf, state, now=NOW)

    assert Order.ran == []
    assert (wf.model_dump_json(), state.model_dump_json()) == (data, state_json)


class RenamedWait(Order):
    def definition(self) -> sf.Section:
        return sf.S(
            self.step("reserve"),
            sf.Go("reminders", sf.S(sf.Wait("remind_wait", self.on("remind")), self.step("nag"))),
            sf.Wait("sign_off", self.on("approve")),
            self.step("ship"),
        )


def test_a_renamed_wait_is_a_mismatch() -> None:
    refuses(RenamedWait, stored(), "approval")


class RemovedGo(Order):
    def definition(self) -> sf.Section:
        return sf.S(
            self.step("reserve"),
            sf.Wait("approval", self.on("approve")),
            self.step("ship"),
        )


def test_a_removed_go_is_a_mismatch() -> None:
    refuses(RemovedGo, stored(), "reminders")


class RenamedGo(Order):
    def definition(self) -> sf.Section:
        return sf.S(
            self.step("reserve"),
            sf.Go("nagger", sf.S(sf.Wait("remind_wait", self.on("remind")), self.step("nag"))),
            sf.Wait("approval", self.on("approve")),
            self.step("ship"),
        )


def test_a_renamed_go_is_a_mismatch() -> None:
    refuses(RenamedGo, stored(), "reminders")


class RenamedEvent(Order):
    def definition(self) -> sf.Section:
        return sf.S(
            self.step("reserve"),
            sf.Go("reminders", sf.S(sf.Wait("remind_wait", self.on("nudge")), self.step("nag"))),
            sf.Wait("approval", self.on("approve")),
            self.step("ship"),
        )


def test_a_renamed_event_is_a_mismatch_even_for_a_callback_to_another_thread() -> None:
    refuses(RenamedEvent, stored(), "remind")


class WaitBecameStep(Order):
    def definition(self) -> sf.Section:
        return sf.S(
            self.step("reserve"),
            sf.Go("reminders", sf.S(sf.Wait("remind_wait", self.on("remind")), self.step("nag"))),
            self.step("approval"),
            sf.Wait("approval_wait", self.on("approve")),
            self.step("ship"),
        )


def test_a_position_that_is_now_a_different_kind_of_statement_is_a_mismatch() -> None:
    refuses(WaitBecameStep, stored(), "approval")


class RenamedStep(Order):
    def definition(self) -> sf.Section:
        return sf.S(
            self.step("reserve"),
            sf.Go("reminders", sf.S(sf.Wait("remind_wait", self.on("remind")), self.step("nag"))),
            sf.Wait("approval", self.on("approve")),
            self.step("dispatch"),
        )


def test_a_renamed_step_a_thread_stands_at_is_a_mismatch() -> None:
    data, state_json = stored_before("ship")
    wf, state = RenamedStep.model_validate_json(data), sf.load_state(state_json)

    with pytest.raises(sf.DefinitionMismatch, match="'ship'"):
        sf.resume(wf, state, now=NOW)

    assert Order.ran == []
    assert (wf.model_dump_json(), state.model_dump_json()) == (data, state_json)


class StepBecameWait(Order):
    def definition(self) -> sf.Section:
        return sf.S(
            self.step("reserve"),
            sf.Go("reminders", sf.S(sf.Wait("remind_wait", self.on("remind")), self.step("nag"))),
            sf.Wait("approval", self.on("approve")),
            sf.Wait("ship", self.on("shipped")),
        )


def test_a_step_that_is_now_a_wait_is_a_mismatch() -> None:
    data, state_json = stored_before("ship")
    wf, state = StepBecameWait.model_validate_json(data), sf.load_state(state_json)

    with pytest.raises(sf.DefinitionMismatch, match="'ship'"):
        sf.resume(wf, state, now=NOW)

    assert Order.ran == []
    assert (wf.model_dump_json(), state.model_dump_json()) == (data, state_json)


class MovedIntoTheThread(Order):
    """``approval`` now lives in the ``reminders`` thread's body, not in main's."""

    def definition(self) -> sf.Section:
        return sf.S(
            self.step("reserve"),
            sf.Go(
                "reminders",
                sf.S(
                    sf.Wait("remind_wait", self.on("remind")),
                    sf.Wait("approval", self.on("approve")),
                    self.step("nag"),
                ),
            ),
            self.step("ship"),
        )


def test_a_position_moved_into_another_thread_body_is_a_mismatch() -> None:
    refuses(MovedIntoTheThread, stored(), "approval")


class AddedStep(Order):
    """A compatible release: a new step after the positions in flight."""

    def definition(self) -> sf.Section:
        return sf.S(
            self.step("reserve"),
            sf.Go("reminders", sf.S(sf.Wait("remind_wait", self.on("remind")), self.step("nag"))),
            sf.Wait("approval", self.on("approve")),
            self.step("ship"),
            self.step("invoice"),
        )


def test_a_release_that_keeps_every_live_name_resumes() -> None:
    data, state_json = stored()
    wf, state = AddedStep.model_validate_json(data), sf.load_state(state_json)

    sf.handle_callback("approve", wf, state, now=NOW)
    sf.resume(wf, state, now=NOW)

    assert Order.ran == ["handle approve", "step ship", "step invoice"]
    assert state.status is sf.WorkflowStatus.FINISHED

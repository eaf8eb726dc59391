"""`Go` and `Return`: named threads (DESIGN §3.1, §3.7, §3.13)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def run(wf: sf.WorkflowState) -> sf.State:
    return sf.resume(wf, sf.new_state("wf-1", type(wf)), now=NOW)


class Reminders(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            self.note("order"),
            sf.Go("reminders", sf.S(self.note("remind"), self.note("remind_again"))),
            self.note("after_go"),
            sf.Wait("payment", sf.OnEvent("paid", lambda: None)),
            self.note("ship"),
        )

    def note(self, what: str) -> sf.Step:
        return sf.Step(what, lambda: self.log.append(what))


def test_go_starts_a_thread_after_the_parent_blocks() -> None:
    wf = Reminders()
    state = run(wf)

    assert wf.log == ["order", "after_go", "remind", "remind_again"]
    assert [t.id for t in state.threads] == ["_main_"]
    assert state.status is sf.WorkflowStatus.WAITING


def test_a_thread_is_recorded_under_its_go_name_while_it_lives() -> None:
    wf = Reminders()
    state = sf.new_state("wf-1", Reminders)
    seen: list[list[tuple[str, str]]] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        seen.append([(t.id, t.name) for t in state.threads])

    sf.resume(wf, state, checkpoint, now=NOW)

    assert [("_main_", "_main_"), ("reminders", "reminders")] in seen


class ReturnInThread(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go(
                "child",
                sf.S(self.note("child_1"), sf.Return(), self.note("child_never")),
            ),
            sf.WaitFor("child_done", lambda: "child_1" in self.log),
            self.note("main_after"),
        )

    def note(self, what: str) -> sf.Step:
        return sf.Step(what, lambda: self.log.append(what))


def test_return_in_a_thread_ends_only_that_thread() -> None:
    wf = ReturnInThread()
    state = run(wf)

    assert wf.log == ["child_1", "main_after"]
    assert state.status is sf.WorkflowStatus.FINISHED


class ReturnInMain(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("a", lambda: self.log.append("a")),
            sf.If(True, sf.Return()),
            sf.Step("never", lambda: self.log.append("never")),
        )


def test_return_in_main_finishes_the_workflow() -> None:
    wf = ReturnInMain()
    state = run(wf)

    assert wf.log == ["a"]
    assert state.status is sf.WorkflowStatus.FINISHED


class Recorder:
    """A handler object that records every call made to it."""

    type = "Recorder"
    calls: ClassVar[list[tuple[str, str, Any]]] = []

    def setup(self, req: sf.CallbackRequest) -> str:
        self.calls.append(("setup", req.name, req.thread_id))
        return f"hook-{req.name}"

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        self.calls.append(("handle", req.name, input))
        return None

    def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        self.calls.append(("teardown", req.setup_data, handled))


@pytest.fixture
def calls() -> list[tuple[str, str, Any]]:
    Recorder.calls = []
    return Recorder.calls


class MainEndsEarly(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go(
                "watcher",
                sf.S(
                    sf.Wait("watch", sf.On("alarm", Recorder()), sf.On("reset", Recorder())),
                    sf.Step("watcher_after", lambda: self.log.append("watcher_after")),
                ),
            ),
            sf.Go("idler", sf.WaitFor("idle", lambda: False)),
            sf.Wait("go_on", sf.OnEvent("finish", lambda: None)),
            sf.Step("main_last", lambda: self.log.append("main_last")),
        )


def test_when_main_ends_other_threads_end_and_their_events_are_torn_down(
    calls: list[tuple[str, str, Any]],
) -> None:
    wf = MainEndsEarly()
    state = run(wf)
    assert [t.id for t in state.threads] == ["_main_", "watcher", "idler"]
    assert calls == [("setup", "alarm", "watcher"), ("setup", "reset", "watcher")]

    sf.handle_callback("finish", wf, state, now=NOW)
    sf.resume(wf, state, now=NOW)

    assert wf.log == ["main_last"]
    assert state.status is sf.WorkflowStatus.FINISHED
    assert state.threads == []
    assert state.teardowns == []
    assert calls[2:] == [("teardown", "hook-alarm", False), ("teardown", "hook-reset", False)]


class SameIdTwice(sf.WorkflowState):
    """Starts a thread with the id ``worker`` on every iteration, while the last one still waits."""

    n: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "loop",
                lambda: self.n < 2,
                sf.Go("worker", sf.WaitFor("forever", lambda: False), id="worker-1"),
                sf.Step("inc", self.inc),
            ),
        )

    def inc(self) -> None:
        self.n += 1


def test_go_with_the_id_of_a_live_thread_is_a_definition_error_naming_the_id() -> None:
    wf = SameIdTwice()
    state = sf.new_state("wf-1", SameIdTwice)
    saved: list[str] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        saved.append(state.model_dump_json())

    with pytest.raises(sf.DefinitionError, match="worker-1"):
        sf.resume(wf, state, checkpoint, now=NOW)

    assert state.model_dump_json() == saved[-1]
    assert [t.id for t in state.threads] == ["_main_", "worker-1"]


class Fanout(sf.WorkflowState):
    """Starts one thread per item from a single ``Go`` in a loop, told apart by a lazy id."""

    items: list[str] = ["a", "b", "c"]
    i: int = 0
    done: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "each",
                lambda: self.i < len(self.items),
                sf.Go("ship", sf.Step("ship_one", self.ship), id=lambda: f"ship-{self.i}"),
                sf.Step("next", self.next),
            ),
            sf.WaitFor("all_shipped", lambda: len(self.done) == len(self.items)),
        )

    def next(self) -> None:
        self.i += 1

    def ship(self) -> None:
        self.done.append(sf.current_step().thread_id)


def test_go_in_a_loop_with_a_lazy_id_starts_distinct_threads() -> None:
    wf = Fanout()
    state = sf.new_state("wf-1", Fanout)
    ids: set[str] = set()

    def checkpoint(kind: sf.CheckpointType) -> None:
        ids.update(t.id for t in state.threads)

    sf.resume(wf, state, checkpoint, now=NOW)

    assert wf.done == ["ship-0", "ship-1", "ship-2"]
    assert ids == {"_main_", "ship-0", "ship-1", "ship-2"}
    assert state.status is sf.WorkflowStatus.FINISHED


class IdRaises(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Go("child", sf.Step("a", lambda: None), id=self.bad_id))

    def bad_id(self) -> str:
        raise LookupError("no id")


def test_a_lazy_go_id_that_raises_is_an_execution_error() -> None:
    state = sf.new_state("wf-1", IdRaises)
    before = state.model_dump_json()

    with pytest.raises(sf.ExecutionError, match="child"):
        sf.resume(IdRaises(), state, now=NOW)

    assert state.model_dump_json() == before


class ReturnFromLoopInThread(sf.WorkflowState):
    n: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go(
                "counter",
                sf.S(
                    sf.For(
                        "count",
                        True,
                        sf.Step("inc", self.inc),
                        sf.If(lambda: self.n >= 2, sf.Return()),
                    ),
                    sf.Step("never", lambda: self.log.append("never")),
                ),
            ),
            sf.WaitFor("counted", lambda: self.n >= 2),
            sf.Step("main_after", lambda: self.log.append("main_after")),
        )

    def inc(self) -> None:
        self.n += 1
        self.log.append(f"inc {self.n}")


def test_return_inside_a_loop_ends_the_thread_not_just_the_loop() -> None:
    wf = ReturnFromLoopInThread()
    state = run(wf)

    assert wf.log == ["inc 1", "inc 2", "main_after"]
    assert state.status is sf.WorkflowStatus.FINISHED

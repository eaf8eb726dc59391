"""Try/catch and compensation together with escalation and with bodies built from an arg
(DESIGN §6, §7): an operator's ``fail`` is a final failure like any other, and a ``Try`` or a
compensated step inside a ``ForEach`` item's (or a ``Go(name, fn)``'s) body works as in the
definition's own tree, across reloads of the state JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import Field
from store_urls import EVERY_STORE, store_url

import stmtflow as sf
from stmtflow.runtime import Engine
from stmtflow.testing import WorkflowHarness

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ESCALATE = sf.RetryPolicy(max_attempts=1, on_exhausted="escalate")
ONCE = sf.RetryPolicy(max_attempts=1)


class Down(Exception):
    """The integration is down."""


class Logged(sf.WorkflowState):
    log: list[str] = Field(default_factory=list)
    broken: ClassVar[set[str]] = set()
    """Steps whose action raises (kept outside the data, which a failure rolls back)."""

    def act(self, name: str) -> Callable[[], None]:
        def action() -> None:
            if name in self.broken:
                raise Down(f"{name} is down")
            self.log.append(name)

        return action

    def undo(self, name: str) -> Callable[[], None]:
        return lambda: self.log.append(f"undo {name}")

    def noted(self) -> None:
        error = sf.current_error()
        assert error is not None
        self.log.append(f"caught {error.type} from {error.step}")


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    Logged.broken = set()
    yield
    Logged.broken = set()


def reload(wf: Logged, state: sf.State) -> tuple[Logged, sf.State]:
    """The workflow and state as a fresh process would load them from the stored JSON."""
    data, text = wf.model_dump_json(), state.model_dump_json()
    return type(wf).model_validate_json(data), sf.load_state(text)


# -- an operator's "fail" -------------------------------------------------------------------------


class Guarded(Logged):
    def definition(self) -> sf.Section:
        return sf.S(
            sf.Try(
                sf.Step("reserve", self.act("reserve"), compensate=self.undo("reserve")),
                sf.Step("sync", self.act("sync"), retry=ESCALATE),
            ).Catch(
                sf.StepError,
                sf.Step("note", self.noted),
                sf.Compensate(),
            ),
            sf.Step("after", self.act("after")),
        )


class Unguarded(Logged):
    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", self.act("reserve"), compensate=self.undo("reserve")),
            sf.Step("book", self.act("book"), compensate=self.undo("book")),
            sf.Step("sync", self.act("sync"), retry=ESCALATE),
            sf.Step("after", self.act("after")),
        )


def escalated(cls: type[Logged]) -> tuple[Logged, sf.State]:
    Logged.broken = {"sync"}
    wf, state = cls(), sf.new_state("e-1", cls)
    sf.resume(wf, state, now=NOW)
    [thread] = state.threads
    assert [e.req.name for e in thread.wait_events] == ["sync.escalation"]
    assert state.status is sf.WorkflowStatus.WAITING
    return reload(wf, state)


def test_an_escalated_step_inside_a_try_waits_for_the_operator_first() -> None:
    wf, state = escalated(Guarded)
    assert wf.log == ["reserve"] and state.saga and state.last_caught is None


def test_an_operators_fail_inside_a_try_is_caught_and_compensate_undoes_the_trys_steps() -> None:
    wf, state = escalated(Guarded)
    sf.handle_callback("sync.escalation", wf, state, {"action": "fail"}, now=NOW)
    wf, state = reload(wf, state)
    sf.resume(wf, state, now=NOW)
    assert wf.log == ["reserve", "caught StepError from sync", "undo reserve", "after"]
    assert state.status is sf.WorkflowStatus.FINISHED and state.error is None
    assert state.last_caught is not None and state.last_caught.type == "StepError"
    assert "an operator chose to fail it" in state.last_caught.message
    assert [c.step for c in state.compensated] == ["reserve"]


def test_an_operators_retry_inside_a_try_is_not_a_failure() -> None:
    wf, state = escalated(Guarded)
    Logged.broken = set()
    sf.handle_callback("sync.escalation", wf, state, {"action": "retry"}, now=NOW)
    sf.resume(wf, state, now=NOW)
    assert wf.log == ["reserve", "sync", "after"] and state.last_caught is None
    assert state.status is sf.WorkflowStatus.FINISHED and state.compensated == []


def test_an_operators_fail_not_caught_compensates_then_fails() -> None:
    wf, state = escalated(Unguarded)
    sf.handle_callback("sync.escalation", wf, state, {"action": "fail"}, now=NOW)
    assert state.status is sf.WorkflowStatus.COMPENSATING  # durable before any compensation
    wf, state = reload(wf, state)
    sf.resume(wf, state, now=NOW)
    assert wf.log == ["reserve", "book", "undo book", "undo reserve"]
    assert state.status is sf.WorkflowStatus.FAILED
    assert state.error is not None and "an operator chose to fail it" in state.error
    assert [c.step for c in state.compensated] == ["book", "reserve"]
    with pytest.raises(sf.WorkflowFinished):
        sf.handle_callback("sync.escalation", wf, state, {"action": "retry"}, now=NOW)


def test_an_operators_fail_through_the_harness() -> None:
    Logged.broken = {"sync"}
    harness = WorkflowHarness(Unguarded, start=NOW).start()
    assert [p.event for p in harness.inputs()] == ["sync.escalation"]
    harness.send("sync.escalation", {"action": "fail"})
    assert harness.status is sf.WorkflowStatus.FAILED and harness.inputs() == []
    assert harness.log[-2:] == ["book.compensate", "reserve.compensate"]


# -- bodies built from an arg ---------------------------------------------------------------------


class Fan(Logged):
    """Each item books, then charges; a charge that fails is caught in the item's own body,
    which gives its booking back; an item whose payout fails is not caught."""

    items: list[str] = Field(default_factory=lambda: ["a", "b", "c"])

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("open", self.act("open"), compensate=self.undo("open")),
            sf.ForEach("each", lambda: self.items, self.item, max_concurrency=1),
            sf.Step("close", self.act("close")),
        )

    def item(self, item: str) -> sf.Section:
        return sf.S(
            sf.Try(
                sf.Step("book", self.act(f"book {item}"), compensate=self.undo(f"book {item}")),
                sf.Step("charge", self.act(f"charge {item}")),
            ).Catch(Down, sf.Step("note", self.noted), sf.Compensate()),
            sf.Step(
                "payout",
                self.act(f"payout {item}"),
                retry=ONCE,
                compensate=self.undo(f"payout {item}"),
            ),
        )


class Stop(Exception):
    """The process stops right after a checkpoint was stored."""


def _stopper(
    wf: Logged, state: sf.State, saved: list[tuple[Logged, sf.State]]
) -> Callable[[sf.CheckpointType], None]:
    def checkpoint(kind: sf.CheckpointType) -> None:
        saved.append(reload(wf, state))
        raise Stop()

    return checkpoint


def run_reloading(wf: Logged, state: sf.State) -> tuple[Logged, sf.State]:
    """Resume, stopping after every checkpoint and going on from the stored JSON (a fresh
    process each time: the bodies are built again from the threads' args)."""
    for _ in range(200):
        saved: list[tuple[Logged, sf.State]] = []
        try:
            sf.resume(wf, state, _stopper(wf, state, saved), now=NOW)
        except Stop:
            wf, state = saved[-1]
            continue
        return reload(wf, state)
    raise AssertionError("did not settle")


def test_a_try_in_a_foreach_body_catches_and_compensates_just_that_item() -> None:
    Logged.broken = {"charge b"}
    wf, state = run_reloading(Fan(), sf.new_state("f-1", Fan))
    assert state.status is sf.WorkflowStatus.FINISHED, state.error
    assert wf.log == [
        "open",
        "book a",
        "charge a",
        "payout a",
        "book b",
        "caught Down from charge",
        "undo book b",
        "payout b",
        "book c",
        "charge c",
        "payout c",
        "close",
    ]
    assert [(c.step, c.thread) for c in state.compensated] == [("book", "each[1]")]


def test_an_uncaught_failure_in_a_foreach_body_undoes_the_ended_items_steps_too() -> None:
    Logged.broken = {"payout c"}
    wf, state = run_reloading(Fan(), sf.new_state("f-2", Fan))
    assert state.status is sf.WorkflowStatus.FAILED
    assert state.error is not None and "'payout'" in state.error
    undone = [line for line in wf.log if line.startswith("undo")]
    latest_first = ["book c", "payout b", "book b", "payout a", "book a", "open"]
    assert undone == [f"undo {name}" for name in latest_first]
    assert [c.error for c in state.compensated] == [None] * 6


def test_cancel_with_compensate_undoes_steps_of_bodies_built_from_args() -> None:
    class Held(Fan):
        def item(self, item: str) -> sf.Section:
            return sf.S(
                sf.Step("book", self.act(f"book {item}"), compensate=self.undo(f"book {item}")),
                sf.Wait("hold", sf.OnEvent("go", lambda: None)),
            )

    wf = Held(items=["a"])
    state = sf.new_state("h-1", Held)
    sf.resume(wf, state, now=NOW)
    wf, state = reload(wf, state)
    sf.cancel(wf, state, compensate=True)
    assert wf.log == ["open", "book a", "undo book a", "undo open"]
    assert state.status is sf.WorkflowStatus.CANCELLED


class Spawner(Logged):
    """``Go(name, fn, arg=...)``: a thread whose body is built from its arg."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go("worker", self.work, arg="w1"),
            sf.Wait("done", sf.OnEvent("finish", lambda: None)),
        )

    def work(self, arg: Any) -> sf.Section:
        return sf.S(
            sf.Try(
                sf.Step("reserve", self.act(f"reserve {arg}"), compensate=self.undo(arg)),
                sf.Step("sync", self.act("sync"), retry=ESCALATE),
            ).Catch(sf.StepError, sf.Step("note", self.noted), sf.Compensate()),
        )


def test_an_operators_fail_in_a_go_body_built_from_its_arg_is_caught_there() -> None:
    Logged.broken = {"sync"}
    wf, state = Spawner(), sf.new_state("g-1", Spawner)
    sf.resume(wf, state, now=NOW)
    wf, state = reload(wf, state)
    sf.handle_callback("sync.escalation", wf, state, {"action": "fail"}, now=NOW)
    wf, state = reload(wf, state)
    sf.resume(wf, state, now=NOW)
    assert wf.log == ["reserve w1", "caught StepError from sync", "undo w1"]
    assert [t.id for t in state.threads] == [sf.MAIN_THREAD]
    assert state.status is sf.WorkflowStatus.WAITING and state.saga == []


def test_join_cancel_rest_does_not_compensate_the_threads_it_ends() -> None:
    """Documented (docs/failures.md): threads a ``Join(cancel_rest=True)`` ends keep their
    completed steps in the saga; they are undone only by a later unwinding of everything."""

    class Race(Logged):
        def definition(self) -> sf.Section:
            return sf.S(
                sf.Go("fast", sf.Step("win", self.act("win")), group="race"),
                sf.Go("slow", self.lane, group="race", arg="slow"),
                sf.Join("join", "race", until="any", cancel_rest=True),
                sf.Step("fail", self.act("fail"), retry=ONCE),
            )

        def lane(self, arg: Any) -> sf.Section:
            return sf.S(
                sf.Step("hold", self.act("hold"), compensate=self.undo("hold")),
                sf.Wait("w", sf.OnEvent("never", lambda: None)),
            )

    Logged.broken = {"fail"}
    wf, state = Race(), sf.new_state("r-1", Race)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.FAILED
    assert wf.log[-1] == "undo hold"  # the uncaught failure unwinds the ended thread's step


def test_a_saga_entry_of_a_built_body_keeps_its_chain_in_the_json() -> None:
    class Held(Fan):
        def item(self, item: str) -> sf.Section:
            return sf.S(
                sf.Step("book", self.act(f"book {item}"), compensate=self.undo(f"book {item}")),
                sf.Wait("hold", sf.OnEvent("go", lambda: None)),
            )

    wf, state = Held(items=["a"]), sf.new_state("j-1", Held)
    sf.resume(wf, state, now=NOW)
    saga = json.loads(state.model_dump_json())["saga"]
    assert saga == [
        {"step": "open", "thread": sf.MAIN_THREAD, "pc": saga[0]["pc"]},
        {"step": "book", "thread": "each[0]", "pc": saga[1]["pc"], "body_of": [["each", "a"]]},
    ]
    assert sf.check_compatibility(Held(items=["a"]), [state]) == []

    class Changed(Held):
        def item(self, item: str) -> sf.Section:
            return sf.S(
                sf.Step("book", self.act(f"book {item}")),
                sf.Wait("hold", sf.OnEvent("go", lambda: None)),
            )

    [found] = sf.check_compatibility(Changed(items=["a"]), [state])
    assert (found.kind, found.name, found.thread) == ("compensation", "book", "each[0]")


@pytest.fixture(params=EVERY_STORE)
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    url = store_url(request, tmp_path, request.param, "composed.db")
    with Engine(url, workflows=[Fan, Unguarded]) as eng:
        yield eng


def test_a_foreach_with_catches_and_an_uncaught_failure_on_every_store(engine: Engine) -> None:
    Logged.broken = {"charge a", "payout b"}
    inst = engine.start(Fan, {"items": ["a", "b"]}, id="fan-1")
    assert inst.status == "failed"
    assert isinstance(inst.data, Fan)
    undone = [line for line in inst.data.log if line.startswith("undo")]
    # book a by its catch's Compensate(); the rest by the uncaught failure, latest first
    assert undone == ["undo book a", "undo book b", "undo payout a", "undo open"]
    state = sf.load_state(engine.store.get("fan-1").state)
    assert [c.thread for c in state.compensated] == ["each[0]", "each[1]", "each[0]", "_main_"]


def test_an_operators_fail_on_every_store(engine: Engine) -> None:
    Logged.broken = {"sync"}
    engine.start(Unguarded, id="u-1")
    assert [p.event for p in engine.inputs()] == ["sync.escalation"]
    engine.send("u-1", "sync.escalation", {"action": "fail"})
    inst = engine.get("u-1")
    assert inst.status == "failed" and engine.inputs() == []
    assert isinstance(inst.data, Unguarded)
    assert inst.data.log == ["reserve", "book", "undo book", "undo reserve"]

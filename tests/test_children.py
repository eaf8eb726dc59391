"""Child workflows (`Child`, `Call`, `Start`, `ChildResult`) on every store: started once, their
end delivered to the parent, failures and cancels as values, timeouts, cancel cascades."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from pydantic import BaseModel
from store_urls import EVERY_STORE, store_url

import stmtflow as sf
from stmtflow.errors import ExecutionError, StmtflowError
from stmtflow.runtime import Engine

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Payment(sf.WorkflowState):
    amount: int = 0
    charged: int = 0

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("charge", self.charge))

    def charge(self) -> None:
        if self.amount < 0:
            raise ValueError("negative amount")
        self.charged = self.amount

    def result(self) -> dict[str, int]:
        return {"charged": self.charged}


class Plain(sf.WorkflowState):
    """No result(): the parent receives its data."""

    n: int = 1

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("bump", self.bump))

    def bump(self) -> None:
        self.n += 1


class Approve(sf.WorkflowState):
    """Waits for an event (so it can be cancelled, timed out, raced)."""

    approved: bool = False

    def definition(self) -> sf.Section:
        return sf.S(sf.Wait("decide", sf.OnEvent("approve", self.approve)))

    def approve(self) -> None:
        self.approved = True


class Order(sf.WorkflowState):
    amount: int = 5
    child: str = "Payment"
    timeout: float | None = None
    results: list[dict[str, Any]] = []
    log: list[str] = []

    def definition(self) -> sf.Section:
        timeout = None if self.timeout is None else timedelta(seconds=self.timeout)
        return sf.S(
            sf.Call("pay", self.child, {"amount": self.amount}, result=self.paid, timeout=timeout),
            sf.If(
                lambda: self.results[-1]["status"] == "finished", sf.Step("ship", self.ship)
            ).Else(sf.Step("refund", self.refund)),
        )

    def paid(self, outcome: sf.ChildResult) -> None:
        self.results.append(outcome.model_dump())

    def ship(self) -> None:
        self.log.append("ship")

    def refund(self) -> None:
        self.log.append("refund")


class Nest(sf.WorkflowState):
    """Calls an Approve, and starts and abandons two more: for cascades."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Start("mail", Approve),
            sf.Wait(
                "loose",
                sf.On("loose.child", sf.Child(Approve, on_parent_end="abandon")),
                sf.On("never", sf.Timer(days=9)),
            ),
        )


class Top(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Call("down", "Middle"))


class Middle(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Call("down", Approve))


class Fire(sf.WorkflowState):
    started: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(sf.Start("mail", Approve, result=self.started.append), sf.Step("done", print))


WORKFLOWS = [Payment, Plain, Approve, Order, Nest, Top, Middle, Fire]


@pytest.fixture(params=EVERY_STORE)
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    return store_url(request, tmp_path, request.param, "children.db")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(url: str, clock: Clock) -> Iterator[Engine]:
    with Engine(url, workflows=WORKFLOWS, clock=clock) as eng:
        yield eng


# -- Call: the child's end is the parent's event ----------------------------------------------


def test_call_delivers_the_childs_result_and_the_parent_goes_on(engine: Engine) -> None:
    inst = engine.start(Order, id="o-1")
    assert inst.status is sf.WorkflowStatus.FINISHED
    [result] = inst.data.results  # type: ignore[attr-defined]
    assert result == {
        "id": "o-1/pay.child@1",
        "workflow": "Payment",
        "status": "finished",
        "output": {"charged": 5},
        "error": None,
    }
    assert inst.data.log == ["ship"]  # type: ignore[attr-defined]
    [child] = engine.children("o-1")
    assert (child.id, child.parent_id, child.root_id) == ("o-1/pay.child@1", "o-1", "o-1")
    assert child.status is sf.WorkflowStatus.FINISHED
    assert (inst.parent_id, inst.root_id) == (None, "o-1")
    assert [i.id for i in engine.list(parent_id="o-1")] == ["o-1/pay.child@1"]


def test_a_child_without_result_hands_its_data(engine: Engine) -> None:
    inst = engine.start(Order, {"child": "Plain"}, id="o-2")
    assert inst.data.results[0]["output"] == {"n": 2}  # type: ignore[attr-defined]


def test_a_failed_child_is_a_value_the_parent_decides_on(engine: Engine) -> None:
    engine.default_retry = sf.RetryPolicy(max_attempts=1)
    inst = engine.start(Order, {"amount": -1}, id="o-3")
    assert inst.status is sf.WorkflowStatus.FINISHED
    [result] = inst.data.results  # type: ignore[attr-defined]
    assert result["status"] == "failed"
    assert "negative amount" in result["error"]
    assert inst.data.log == ["refund"]  # type: ignore[attr-defined]
    assert engine.get("o-3/pay.child@1").status is sf.WorkflowStatus.FAILED


def test_a_cancelled_child_is_a_value_too(engine: Engine) -> None:
    inst = engine.start(Order, {"child": "Approve"}, id="o-4")
    assert inst.status is sf.WorkflowStatus.WAITING
    engine.cancel("o-4/pay.child@1")
    parent = engine.get("o-4")
    assert parent.status is sf.WorkflowStatus.FINISHED
    assert parent.data.results[0]["status"] == "cancelled"  # type: ignore[attr-defined]
    assert parent.data.log == ["refund"]  # type: ignore[attr-defined]


def test_a_call_that_times_out_cancels_the_child(engine: Engine, clock: Clock) -> None:
    engine.start(Order, {"child": "Approve", "timeout": 60}, id="o-5")
    clock.now += timedelta(seconds=61)
    engine.tick()
    parent = engine.get("o-5")
    assert parent.status is sf.WorkflowStatus.FINISHED
    [result] = parent.data.results  # type: ignore[attr-defined]
    assert (result["status"], result["id"]) == ("timed_out", "o-5/pay.child@1")
    assert engine.get("o-5/pay.child@1").status is sf.WorkflowStatus.CANCELLED
    assert parent.data.log == ["refund"]  # type: ignore[attr-defined]


def test_the_child_wins_against_a_timeout_that_has_not_come(engine: Engine, clock: Clock) -> None:
    engine.start(Order, {"child": "Approve", "timeout": 60}, id="o-6")
    engine.send("o-6/pay.child@1", "approve")
    parent = engine.get("o-6")
    assert parent.data.results[0]["status"] == "finished"  # type: ignore[attr-defined]
    assert parent.data.log == ["ship"]  # type: ignore[attr-defined]
    clock.now += timedelta(seconds=120)
    assert engine.tick() == 0  # the timer was torn down


# -- exactly once -----------------------------------------------------------------------------


def test_the_child_is_stored_with_the_checkpoint_that_armed_it(
    engine: Engine, clock: Clock
) -> None:
    """Without follow-ups (as a worker that dies after the commit leaves it), the armed call and
    its child are both stored; once the lease the child was born under lapses, a tick runs the
    child and then the parent, once each."""
    engine._follow_up = lambda touched: None  # type: ignore[method-assign]
    engine.start(Order, id="o-7")
    parent, child = engine.get("o-7"), engine.get("o-7/pay.child@1")
    assert parent.status is sf.WorkflowStatus.WAITING
    [event] = parent.state.threads[0].wait_events
    assert (event.req.name, event.req.setup_data) == ("pay.child", "o-7/pay.child@1")
    assert child.status is sf.WorkflowStatus.RESUMING
    assert engine.tick() == 0  # held from birth by the engine that created it ...
    clock.now += engine.lease + timedelta(seconds=1)  # ... which died
    engine.tick()  # the child finishes and posts its end
    engine.tick()  # the parent takes it
    parent = engine.get("o-7")
    assert parent.status is sf.WorkflowStatus.FINISHED
    assert len(parent.data.results) == 1  # type: ignore[attr-defined]
    assert engine.store.inbox("o-7") == []
    assert len(engine.children("o-7")) == 1


def test_a_setup_run_again_finds_the_same_child(engine: Engine, clock: Clock) -> None:
    """The child id is derived from the parent id, the event and the armed pc: a setup repeated
    after a crash (here: the same record written back) creates nothing new."""
    engine._follow_up = lambda touched: None  # type: ignore[method-assign]
    engine.start(Order, {"child": "Approve"}, id="o-8")
    clock.now += engine.lease + timedelta(seconds=1)
    parent = engine.store.get("o-8")
    event = sf.load_state(parent.state).threads[0].wait_events[0]
    pending = event.model_copy(update={"status": sf.WaitEventStatus.PENDING_SETUP})
    state = sf.load_state(parent.state)
    state.threads[0].wait_events = (pending,)
    state.status = sf.WorkflowStatus.RESUMING
    engine.store.update(
        sf_replace(parent, state=state.model_dump_json(), status="resuming"),
        expected_version=parent.version,
    )
    engine.tick()
    assert [c.id for c in engine.children("o-8")] == ["o-8/pay.child@1"]


def sf_replace(record: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(record, **changes)


# -- Start: fire and forget -------------------------------------------------------------------


def test_start_hands_the_id_and_the_child_outlives_the_parent(engine: Engine) -> None:
    inst = engine.start(Fire, id="f-1")
    assert inst.status is sf.WorkflowStatus.FINISHED
    assert inst.data.started == ["f-1/mail@1"]  # type: ignore[attr-defined]
    child = engine.get("f-1/mail@1")
    assert child.status is sf.WorkflowStatus.WAITING and child.parent_id == "f-1"
    engine.send("f-1/mail@1", "approve")
    assert engine.get("f-1/mail@1").status is sf.WorkflowStatus.FINISHED
    assert engine.store.inbox("f-1") == []  # nobody waits on a started child's end


# -- cancel -----------------------------------------------------------------------------------


def test_cancel_cascades_depth_first_to_called_children(engine: Engine) -> None:
    engine.start(Top, id="t")
    middle, bottom = "t/down.child@1", "t/down.child@1/down.child@1"
    assert engine.get(bottom).status is sf.WorkflowStatus.WAITING
    assert engine.get(bottom).root_id == "t"
    engine.cancel("t")
    for id in ("t", middle, bottom):
        assert engine.get(id).status is sf.WorkflowStatus.CANCELLED, id


def test_cancel_without_cascade_leaves_children_running(engine: Engine) -> None:
    engine.start(Top, id="t2")
    engine.cancel("t2", cascade=False)
    assert engine.get("t2").status is sf.WorkflowStatus.CANCELLED
    assert engine.get("t2/down.child@1").status is sf.WorkflowStatus.WAITING


def test_abandoned_and_started_children_outlive_a_cancelled_parent(engine: Engine) -> None:
    engine.start(Nest, id="n")
    kids = {c.id: c.status for c in engine.children("n")}
    assert kids == {
        "n/mail@1": sf.WorkflowStatus.WAITING,
        "n/loose.child@3": sf.WorkflowStatus.WAITING,
    }
    engine.cancel("n")
    assert {c.id: c.status for c in engine.children("n")} == kids


def test_a_cancel_racing_the_childs_finish_has_one_outcome(url: str) -> None:
    for round in range(6):
        with Engine(url, workflows=WORKFLOWS) as engine:
            id = f"race-{round}"
            engine.start(Order, {"child": "Approve"}, id=id)
            child = f"{id}/pay.child@1"
            errors: list[BaseException] = []

            def run(fn: Any, errors: list[BaseException] = errors) -> None:
                try:
                    fn()
                except StmtflowError as exc:  # the loser: finished, or nothing to approve
                    errors.append(exc)

            racers = [
                threading.Thread(target=run, args=(partial(engine.send, child, "approve"),)),
                threading.Thread(target=run, args=(partial(engine.cancel, child),)),
            ]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join()
            for _ in range(3):
                engine.tick()
            ended = engine.get(child).status.value
            parent = engine.get(id)
            assert ended in ("finished", "cancelled")
            assert [r["status"] for r in parent.data.results] == [ended]  # type: ignore[attr-defined]
            assert parent.status is sf.WorkflowStatus.FINISHED
            assert len(errors) <= 1


# -- bad input --------------------------------------------------------------------------------


def test_an_unregistered_child_type_is_refused_before_anything_is_stored(url: str) -> None:
    with Engine(url, workflows=[Order]) as engine:
        with pytest.raises(StmtflowError, match=r"'o-9' \(Order\), Call 'pay'.*'Payment'"):
            engine.start(Order, id="o-9")
        assert engine.list() == []


class Strict(sf.WorkflowState):
    amount: int

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("s", print))


class BadCall(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Call("pay", Strict, {"amount": "lots"}))


def test_an_input_that_does_not_fit_the_child_is_refused_at_the_start(url: str) -> None:
    """The start stores the instance as created, nothing of its run: no child, the state as
    new, the error kept (the engine tries again after the error backoff)."""
    with Engine(url, workflows=[BadCall, Strict]) as engine:
        with pytest.raises(ExecutionError) as caught:
            engine.start(BadCall, id="c-1")
        message = str(caught.value)
        for part in ("event 'pay.child'", "'c-1' (BadCall)", "thread '_main_'", "Strict", "amount"):
            assert part in message
        assert engine.children("c-1") == []
        got = engine.store.get("c-1")
        assert got.state == sf.new_state("c-1", "BadCall").model_dump_json()
        assert got.data == "{}" and got.status == "resuming"
        assert got.error == message


class Late(sf.WorkflowState):
    """Waits for ``go``, then reaches the child statement of ``kind`` (bad in one way each)."""

    kind: str
    kinds: list[str] = ["Nope"]

    def definition(self) -> sf.Section:
        go = sf.Wait("until_go", sf.OnEvent("go", lambda: None))
        if self.kind == "call":
            return sf.S(go, sf.Call("pay", Strict, {"amount": "lots"}))
        if self.kind == "start":
            return sf.S(go, sf.Start("mail", Strict, lambda: {"amount": [1]}))
        # A body built from an item: its Call's type is seen only when the item's thread runs.
        return sf.S(go, sf.ForEach("each", lambda: self.kinds, lambda k: sf.S(sf.Call("c", k))))


@pytest.mark.parametrize(
    ("kind", "error", "parts"),
    [
        ("call", ExecutionError, ["event 'pay.child'", "thread '_main_'", "Strict", "amount"]),
        ("start", ExecutionError, ["Start 'mail'", "thread '_main_'", "Strict", "amount"]),
        ("foreach", ExecutionError, ["event 'c.child'", "thread 'each[0]'", "'Nope'"]),
    ],
)
def test_a_refused_child_leaves_the_stored_parent_as_it_was(
    url: str, kind: str, error: type[Exception], parts: list[str]
) -> None:
    """A send that takes the parent to a child it cannot start (an input that does not fit,
    a type not registered) raises naming the workflow, thread and statement, and stores
    nothing: the parent's row is as it was, byte for byte; no child exists."""
    with Engine(url, workflows=[Late, Strict]) as engine:
        engine.start(Late, {"kind": kind}, id="late-1")
        before = engine.store.get("late-1")
        with pytest.raises(error) as caught:
            engine.send("late-1", "go")
        for part in ["workflow 'late-1' (Late)", *parts]:
            assert part in str(caught.value)
        assert engine.store.get("late-1") == before
        assert engine.children("late-1") == []
        with pytest.raises(error):  # refused again, the same way: the event is still awaited
            engine.send("late-1", "go")
        assert engine.store.get("late-1") == before


def test_without_a_runtime_children_need_the_engine_or_the_harness() -> None:
    for wf in (Order(), Fire()):
        with pytest.raises(ExecutionError, match=r"needs a runtime.*Engine.*WorkflowHarness"):
            sf.resume(wf, sf.new_state("x", type(wf)))


def test_call_and_start_check_their_arguments() -> None:
    with pytest.raises(sf.DefinitionError) as caught:
        sf.validate(
            sf.S(
                sf.Call("a", 42, timeout=timedelta(0)),  # type: ignore[arg-type]
                sf.Start("b", "", id=""),
            )
        )
    text = str(caught.value)
    assert "workflow must be a WorkflowState class or a type name" in text
    assert "timeout must be a positive timedelta" in text
    assert "id must be a non-empty string" in text
    with pytest.raises(ValueError, match="on_parent_end"):
        sf.Child("X", on_parent_end="later")  # type: ignore[arg-type]


def test_call_json_and_drawing() -> None:
    tree = sf.S(sf.Call("pay", Payment, timeout=timedelta(minutes=5)), sf.Start("mail", "Email"))
    assert sf.definition_json(tree)["body"][:2] == [
        {"type": "Call", "name": "pay", "workflow": "Payment", "timeout": 300, "result": False},
        {"type": "Start", "name": "mail", "workflow": "Email", "result": False},
    ]
    text = sf.to_mermaid(tree)
    assert "Call pay" in text and "Payment" in text and "pay.timeout" in text


def test_child_results_round_trip_as_json() -> None:
    result = sf.ChildResult(id="a", workflow="W", status="timed_out", error="late")
    assert sf.ChildResult.model_validate(json.loads(result.model_dump_json())) == result
    assert not result.ok


# -- the harness ------------------------------------------------------------------------------


def test_the_harness_runs_children_on_its_fake_clock() -> None:
    from stmtflow.testing import WorkflowHarness

    h = WorkflowHarness(Order, data={"child": "Approve", "timeout": 60}, workflows=[Approve])
    h.start()
    [child] = h.children()
    assert child.status is sf.WorkflowStatus.WAITING
    h.advance(timedelta(seconds=59))
    assert h.status is sf.WorkflowStatus.WAITING
    h.advance(timedelta(seconds=2))
    assert [r["status"] for r in h.data.results] == ["timed_out"]
    assert h.log == ["refund"]  # the harness's own steps
    assert h.engine.get(child.id).status is sf.WorkflowStatus.CANCELLED

    h2 = WorkflowHarness(Order, id="o", data={"child": "Approve"}, workflows=[Approve]).start()
    h2.send("approve", to="o/pay.child@1")
    assert h2.data.results[0]["status"] == "finished" and h2.log == ["ship"]


def test_a_childs_timer_fires_when_the_harness_advances() -> None:
    from stmtflow.testing import WorkflowHarness

    class Later(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Sleep("nap", timedelta(hours=1)))

    class Waits(sf.WorkflowState):
        done: bool = False

        def definition(self) -> sf.Section:
            return sf.S(sf.Call("c", Later, result=lambda r: setattr(self, "done", r.ok)))

    h = WorkflowHarness(Waits).start()
    assert h.advance(timedelta(hours=2)) == []  # the child's timer, not this instance's
    assert h.data.done and h.status is sf.WorkflowStatus.FINISHED


class Side(sf.WorkflowState):
    """A thread calls a child; the main thread ends first."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go("side", sf.S(sf.Call("ask", Approve))),
            sf.Wait("hold", sf.OnEvent("go", lambda: None)),
        )


def test_a_call_whose_thread_ends_cancels_its_child(url: str) -> None:
    with Engine(url, workflows=[Side, Approve]) as engine:
        engine.start(Side, id="s")
        child = "s/ask.child@2"
        assert engine.get(child).status is sf.WorkflowStatus.WAITING
        engine.send("s", "go")  # the main thread ends, and with it the side thread
        assert engine.get("s").status is sf.WorkflowStatus.FINISHED
        assert engine.get(child).status is sf.WorkflowStatus.CANCELLED


class Form(BaseModel):
    ok: bool


class Asks(sf.WorkflowState):
    """A child that asks a person."""

    ok: bool = False

    def definition(self) -> sf.Section:
        return sf.S(sf.Ask("q", Form, self.answer, prompt="ok?", assignee="ana"))

    def answer(self, form: Form) -> None:
        self.ok = form.ok


class CallsAsks(sf.WorkflowState):
    outcome: str = ""

    def definition(self) -> sf.Section:
        return sf.S(sf.Call("c", Asks, result=lambda r: setattr(self, "outcome", r.status)))


def test_a_childs_question_is_listed_and_its_answer_ends_the_call(url: str) -> None:
    with Engine(url, workflows=[CallsAsks, Asks]) as engine:
        engine.start(CallsAsks, id="p")
        [question] = engine.inputs(assignee="ana")
        assert (question.instance_id, question.event) == ("p/c.child@1", "q.answer")
        engine.send(question.instance_id, question.event, {"ok": True})
        assert engine.get("p").data.outcome == "finished"  # type: ignore[attr-defined]
        assert engine.inputs() == []


class Race(sf.WorkflowState):
    """Two threads each call a child; the first to end wins, the other is ended."""

    winner: str = ""

    def definition(self) -> sf.Section:
        def quote(supplier: str) -> sf.Section:
            return sf.S(sf.Call("ask", Approve, result=lambda r: self.won(supplier, r)))

        return sf.S(
            sf.Go("a", quote, id="a", arg="a", group="quotes"),
            sf.Go("b", quote, id="b", arg="b", group="quotes"),
            sf.Join("first", "quotes", until="any"),
        )

    def won(self, supplier: str, result: sf.ChildResult) -> None:
        self.winner = self.winner or supplier


def test_a_join_that_ends_the_rest_cancels_their_children(url: str) -> None:
    with Engine(url, workflows=[Race, Approve]) as engine:
        engine.start(Race, id="r")
        first, second = sorted(c.id for c in engine.children("r"))
        engine.send(first, "approve")
        parent = engine.get("r")
        assert parent.status is sf.WorkflowStatus.FINISHED
        assert engine.get(first).status is sf.WorkflowStatus.FINISHED
        assert engine.get(second).status is sf.WorkflowStatus.CANCELLED
        assert parent.data.winner in ("a", "b")  # type: ignore[attr-defined]


class Fussy(sf.WorkflowState):
    """Its Call's result handler fails until ``fixed``."""

    fixed: bool = False
    got: str = ""

    def definition(self) -> sf.Section:
        return sf.S(sf.Call("pay", Payment, {"amount": 2}, result=self.paid))

    def paid(self, result: sf.ChildResult) -> None:
        if not self.fixed:
            raise RuntimeError("result handler bug")
        self.got = result.status


def test_a_childs_end_whose_result_handler_fails_is_kept_for_a_retry(
    url: str, clock: Clock
) -> None:
    with Engine(url, workflows=[Fussy, Payment], clock=clock) as engine:
        engine.start(Fussy, id="fz")
        parent = engine.get("fz")
        assert parent.status is sf.WorkflowStatus.WAITING
        assert parent.error is not None and "result handler bug" in parent.error
        [kept] = engine.store.inbox("fz")
        assert kept.status == "kept" and parent.wake_at is not None
        # The code is fixed (here: the data); after the backoff the end is delivered again.
        engine.store.update(
            sf_replace(engine.store.get("fz"), data='{"fixed": true, "got": ""}'),
            expected_version=parent.version,
        )
        clock.now += engine.error_backoff + timedelta(seconds=1)
        engine.tick()
        parent = engine.get("fz")
        assert parent.status is sf.WorkflowStatus.FINISHED
        assert parent.data.got == "finished"  # type: ignore[attr-defined]
        assert engine.store.inbox("fz") == []

"""Callbacks: routing an event to its thread, every refusal, and the events' life cycle.

DESIGN §3.5 (routing and refusals, each changing nothing) and §3.6 (teardown of the other
events on the next resume; setup and teardown failures kept and retried, never dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from pydantic import BaseModel

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class Boom(Exception):
    """What failing user code raises in these tests."""


def snapshot(wf: sf.WorkflowState, state: sf.State) -> tuple[str, str]:
    return wf.model_dump_json(), state.model_dump_json()


def refused(
    error: type[Exception], wf: sf.WorkflowState, state: sf.State, deliver: Callable[[], Any]
) -> pytest.ExceptionInfo[Any]:
    """Assert ``deliver()`` raises ``error`` and leaves data and state byte-identical."""
    before = snapshot(wf, state)
    with pytest.raises(error) as info:
        deliver()
    assert snapshot(wf, state) == before
    return info


def req(name: str, **kw: Any) -> sf.CallbackRequest:
    return sf.CallbackRequest(name=name, **kw)


# -- a workflow with threads doing different things ---------------------------------------------


class Busy(sf.WorkflowState):
    """Main waits on ``go``; other threads wait on ``ping``, on a condition, or retry a step."""

    log: list[str] = []
    ready: bool = False
    healthy: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go("flaky", sf.S(sf.Step("flaky_step", self.flaky, retry=self.slow_retry()))),
            sf.Go("worker", sf.S(sf.WaitFor("worker_ready", lambda: self.ready), self.note("w2"))),
            sf.Go(
                "listener",
                sf.S(sf.Wait("listen", sf.OnEvent("ping", self.on_ping, self.note("pinged")))),
            ),
            sf.Wait("main_wait", sf.OnEvent("go", self.on_go, self.note("went"))),
            self.note("main_end"),
        )

    @staticmethod
    def slow_retry() -> sf.RetryPolicy:
        return sf.RetryPolicy(
            max_attempts=5, initial_interval=timedelta(hours=1), max_interval=timedelta(hours=1)
        )

    def note(self, name: str) -> sf.Step:
        return sf.Step(name, lambda: self.log.append(name))

    def flaky(self) -> None:
        if not self.healthy:
            raise Boom("not yet")
        self.log.append("flaky_step")

    def on_ping(self, value: int) -> str:
        self.log.append(f"ping:{value}")
        return f"pong {value}"

    def on_go(self) -> None:
        self.log.append("go")


@pytest.fixture
def busy() -> tuple[Busy, sf.State]:
    wf, state = Busy(), sf.new_state("busy-1", Busy)
    sf.resume(wf, state, now=NOW)
    statuses = {t.id: t.status for t in state.threads}
    assert statuses == {
        sf.MAIN_THREAD: sf.ThreadStatus.WAITING_EVENT,
        "flaky": sf.ThreadStatus.EXECUTING,
        "worker": sf.ThreadStatus.WAITING_CONDITION,
        "listener": sf.ThreadStatus.WAITING_EVENT,
    }
    return wf, state


def test_an_event_is_routed_by_name_to_its_thread_while_others_execute_or_wait(busy) -> None:
    wf, state = busy
    assert sf.handle_callback("ping", wf, state, 7, now=NOW) == "pong 7"
    listener = state.thread("listener")
    assert listener is not None
    assert (listener.status, listener.cur_callback) == (sf.ThreadStatus.RESUMING, "ping")
    main = state.thread(sf.MAIN_THREAD)
    assert main is not None and main.status is sf.ThreadStatus.WAITING_EVENT
    assert sf.handle_callback("go", wf, state, now=NOW) is None
    assert main.cur_callback == "go"
    sf.resume(wf, state, now=NOW)
    assert wf.log == ["ping:7", "go", "went", "main_end"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_the_listener_thread_body_runs_when_main_keeps_waiting(busy) -> None:
    wf, state = busy
    sf.handle_callback("ping", wf, state, 1, now=NOW)
    sf.resume(wf, state, now=NOW)
    assert wf.log == ["ping:1", "pinged"]
    assert state.thread("listener") is None
    assert state.status is sf.WorkflowStatus.WAITING


def test_handle_callback_runs_no_workflow_code_beyond_the_handler(busy) -> None:
    wf, state = busy
    wf.ready = True  # the worker could move on now, but only resume moves threads
    sf.handle_callback("ping", wf, state, 5, now=NOW)
    assert wf.log == ["ping:5"]
    listener = state.thread("listener")
    assert listener is not None and listener.cur_step == "listen"
    assert state.status is sf.WorkflowStatus.RESUMING
    sf.resume(wf, state, now=NOW)
    assert wf.log == ["ping:5", "pinged", "w2"]  # conditions wake last (§3.1)


def test_thread_id_routes_to_the_named_thread(busy) -> None:
    wf, state = busy
    sf.handle_callback(req("ping", thread_id="listener"), wf, state, 3, now=NOW)
    listener = state.thread("listener")
    assert listener is not None and listener.cur_callback == "ping"


def test_workflow_id_of_this_execution_is_accepted(busy) -> None:
    wf, state = busy
    sf.handle_callback(req("ping", workflow_id="busy-1"), wf, state, 3, now=NOW)
    assert wf.log == ["ping:3"]


# -- refusals -----------------------------------------------------------------------------------


def test_unknown_event_is_refused(busy) -> None:
    wf, state = busy
    info = refused(
        sf.UnknownCallback, wf, state, lambda: sf.handle_callback("nope", wf, state, now=NOW)
    )
    assert "nope" in str(info.value) and "busy-1" in str(info.value)


def test_unknown_thread_id_is_refused(busy) -> None:
    wf, state = busy
    info = refused(
        sf.UnknownCallback,
        wf,
        state,
        lambda: sf.handle_callback(req("ping", thread_id="ghost"), wf, state, 1, now=NOW),
    )
    assert "ghost" in str(info.value)


def test_a_thread_waiting_on_other_events_refuses_the_event(busy) -> None:
    wf, state = busy
    refused(
        sf.UnknownCallback,
        wf,
        state,
        lambda: sf.handle_callback(req("go", thread_id="listener"), wf, state, now=NOW),
    )


def test_another_workflow_id_is_refused(busy) -> None:
    wf, state = busy
    info = refused(
        sf.UnknownCallback,
        wf,
        state,
        lambda: sf.handle_callback(req("ping", workflow_id="busy-2"), wf, state, 1, now=NOW),
    )
    assert "busy-2" in str(info.value)


def test_a_named_thread_that_is_executing_is_not_waiting(busy) -> None:
    wf, state = busy
    info = refused(
        sf.NotWaiting,
        wf,
        state,
        lambda: sf.handle_callback(req("ping", thread_id="flaky"), wf, state, 1, now=NOW),
    )
    assert "flaky" in str(info.value) and "executing" in str(info.value)


def test_a_named_thread_at_a_wait_for_is_not_waiting_on_events(busy) -> None:
    wf, state = busy
    info = refused(
        sf.NotWaiting,
        wf,
        state,
        lambda: sf.handle_callback(req("ping", thread_id="worker"), wf, state, 1, now=NOW),
    )
    assert "worker" in str(info.value) and "worker_ready" in str(info.value)


def test_a_second_callback_for_a_fired_wait_is_stale(busy) -> None:
    wf, state = busy
    listener = state.thread("listener")
    assert listener is not None
    armed_pc = listener.wait_events[0].req.pc
    sf.handle_callback("ping", wf, state, 1, now=NOW)
    for again in (
        req("ping"),
        req("ping", thread_id="listener"),
        req("ping", thread_id="listener", pc=armed_pc),
        req("ping", pc=armed_pc),
    ):
        refused(
            sf.StaleCallback,
            wf,
            state,
            lambda r=again: sf.handle_callback(r, wf, state, 2, now=NOW),
        )
    assert wf.log == ["ping:1"]


def test_a_pc_other_than_the_armed_one_is_stale(busy) -> None:
    wf, state = busy
    listener = state.thread("listener")
    assert listener is not None
    armed_pc = listener.wait_events[0].req.pc
    info = refused(
        sf.StaleCallback,
        wf,
        state,
        lambda: sf.handle_callback(req("ping", pc=armed_pc + 1), wf, state, 1, now=NOW),
    )
    assert str(armed_pc) in str(info.value)


def test_a_finished_workflow_refuses_callbacks() -> None:
    class Once(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Wait("w", sf.OnEvent("e", lambda: None)))

    wf, state = Once(), sf.new_state("once-1", Once)
    sf.resume(wf, state, now=NOW)
    sf.handle_callback("e", wf, state, now=NOW)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.FINISHED
    info = refused(
        sf.WorkflowFinished, wf, state, lambda: sf.handle_callback("e", wf, state, now=NOW)
    )
    assert "once-1" in str(info.value) and "finished" in str(info.value)


def test_a_failed_workflow_refuses_callbacks(busy) -> None:
    wf, state = busy
    later = NOW
    while state.status is not sf.WorkflowStatus.FAILED:  # use up the flaky step's attempts
        later += timedelta(days=1)
        sf.resume(wf, state, now=later)
    refused(sf.WorkflowFinished, wf, state, lambda: sf.handle_callback("go", wf, state, now=NOW))


class Payment(BaseModel):
    amount: int
    currency: Literal["EUR", "USD"]
    payer: str


class Pay(sf.WorkflowState):
    paid: list[int] = []

    def definition(self) -> sf.Section:
        return sf.S(sf.Wait("payment", sf.OnEvent("paid", self.on_paid)))

    def on_paid(self, payment: Payment) -> str:
        self.paid.append(payment.amount)
        return f"received {payment.amount} {payment.currency}"


def test_invalid_input_is_refused_listing_every_problem() -> None:
    wf, state = Pay(), sf.new_state("pay-1", Pay)
    sf.resume(wf, state, now=NOW)
    bad = {"amount": "ten", "currency": "GBP"}
    info = refused(
        sf.CallbackInputError, wf, state, lambda: sf.handle_callback("paid", wf, state, bad)
    )
    problems = info.value.problems
    assert len(problems) == 3, problems
    assert any("amount" in p for p in problems)
    assert any("currency" in p or "GBP" in p for p in problems)
    assert any("payer" in p for p in problems)
    assert "paid" in str(info.value)
    ok = {"amount": 10, "currency": "EUR", "payer": "ann"}
    assert sf.handle_callback("paid", wf, state, ok) == "received 10 EUR"


class Entry(BaseModel):
    tags: list[str] = []


class Ledger(BaseModel):
    entries: list[Entry] = []


class Book(sf.WorkflowState):
    ledgers: list[Ledger] = [Ledger(entries=[Entry(tags=["a"])])]

    def definition(self) -> sf.Section:
        return sf.S(sf.Wait("w", sf.OnEvent("post", self.on_post)))

    def on_post(self, tag: str) -> None:
        self.ledgers[0].entries[0].tags.append(tag)
        self.ledgers[0].entries.append(Entry(tags=[tag]))
        self.ledgers.append(Ledger())
        raise Boom(f"cannot post {tag}")


def test_a_raising_handler_is_rolled_back_with_its_cause_chained() -> None:
    wf, state = Book(), sf.new_state("book-1", Book)
    sf.resume(wf, state, now=NOW)
    info = refused(sf.HandlerError, wf, state, lambda: sf.handle_callback("post", wf, state, "x"))
    assert isinstance(info.value.__cause__, Boom)
    message = str(info.value)
    assert "post" in message and "book-1" in message and "cannot post x" in message
    assert wf.ledgers == [Ledger(entries=[Entry(tags=["a"])])]
    # the event is still armed: a later callback is delivered normally
    thread = state.thread(sf.MAIN_THREAD)
    assert thread is not None and thread.status is sf.ThreadStatus.WAITING_EVENT


# -- several threads on the same event; pc across loop iterations -------------------------------


class Agents(sf.WorkflowState):
    """Two threads from one ``Go`` in a loop wait on the same event ``reply``."""

    n: int = 0
    replies: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "spawn",
                lambda: self.n < 2,
                sf.Step("count", self.count),
                sf.Go(
                    "agent",
                    sf.S(sf.Wait("agent_wait", sf.OnEvent("reply", self.replies.append))),
                    id=lambda: f"agent-{self.n}",
                ),
            ),
            sf.WaitFor("all_replied", lambda: len(self.replies) == 2),
        )

    def count(self) -> None:
        self.n += 1


@pytest.fixture
def agents() -> tuple[Agents, sf.State]:
    wf, state = Agents(), sf.new_state("agents-1", Agents)
    sf.resume(wf, state, now=NOW)
    assert [t.id for t in state.threads] == [sf.MAIN_THREAD, "agent-1", "agent-2"]
    return wf, state


def test_two_threads_on_one_event_without_thread_id_is_ambiguous(agents) -> None:
    wf, state = agents
    info = refused(
        sf.AmbiguousCallback, wf, state, lambda: sf.handle_callback("reply", wf, state, "x")
    )
    assert "agent-1" in str(info.value) and "agent-2" in str(info.value)


def test_thread_id_picks_one_of_several_waiting_threads(agents) -> None:
    wf, state = agents
    sf.handle_callback(req("reply", thread_id="agent-2"), wf, state, "from 2")
    fired = {t.id: t.cur_callback for t in state.threads}
    assert fired == {sf.MAIN_THREAD: None, "agent-1": None, "agent-2": "reply"}
    sf.handle_callback(req("reply", thread_id="agent-1"), wf, state, "from 1")
    sf.resume(wf, state, now=NOW)
    assert wf.replies == ["from 2", "from 1"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_the_armed_pc_picks_one_of_several_waiting_threads(agents) -> None:
    wf, state = agents
    second = state.thread("agent-2")
    assert second is not None
    pc = second.wait_events[0].req.pc
    first = state.thread("agent-1")
    assert first is not None and first.wait_events[0].req.pc != pc
    sf.handle_callback(req("reply", pc=pc), wf, state, "by pc")
    assert second.cur_callback == "reply" and first.cur_callback is None


class Rounds(sf.WorkflowState):
    """The same wait re-armed in every iteration of a loop."""

    answers: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "rounds",
                lambda: len(self.answers) < 3,
                sf.Wait("ask", sf.OnEvent("answer", self.answers.append)),
                sf.Step("tick", lambda: None),
            )
        )


def armed(state: sf.State, event: str) -> sf.CallbackRequest:
    for thread in state.threads:
        for ev in thread.wait_events:
            if ev.req.name == event:
                return ev.req
    raise AssertionError(f"no thread waits on {event!r}")


def test_a_late_duplicate_from_an_earlier_iteration_is_stale() -> None:
    wf, state = Rounds(), sf.new_state("rounds-1", Rounds)
    sf.resume(wf, state, now=NOW)
    first = armed(state, "answer")
    sf.handle_callback(first, wf, state, "one")
    sf.resume(wf, state, now=NOW)
    second = armed(state, "answer")
    assert second.pc > first.pc
    info = refused(
        sf.StaleCallback, wf, state, lambda: sf.handle_callback(first, wf, state, "late dup")
    )
    assert str(first.pc) in str(info.value) and str(second.pc) in str(info.value)
    sf.handle_callback(second, wf, state, "two")
    assert wf.answers == ["one", "two"]


def test_pc_zero_means_whichever_wait_awaits_it_now() -> None:
    wf, state = Rounds(), sf.new_state("rounds-2", Rounds)
    sf.resume(wf, state, now=NOW)
    for answer in ("a", "b", "c"):
        sf.handle_callback(req("answer", pc=0), wf, state, answer)
        sf.resume(wf, state, now=NOW)
    assert wf.answers == ["a", "b", "c"]
    assert state.status is sf.WorkflowStatus.FINISHED


# -- the stored request, setup and teardown -------------------------------------------------------


class Hook(sf.BaseHandler):
    """Records every call in ``calls`` (outside the workflow data, like a real webhook service)."""

    def __init__(self, calls: list[tuple[Any, ...]], tag: str, *, fail: list[str] | None = None):
        self.calls, self.tag, self.fail = calls, tag, fail if fail is not None else []

    def setup(self, req: sf.CallbackRequest) -> str:
        self.calls.append(("setup", req.name))
        if "setup" in self.fail:
            raise Boom(f"cannot register {req.name}")
        return f"hook-{self.tag}"

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        self.calls.append(("handle", req.name, req.model_dump()))
        return input

    def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        self.calls.append(("teardown", req.name, handled, req.setup_data))
        if "teardown" in self.fail:
            raise Boom(f"cannot unregister {req.name}")


def hooked(calls: list[tuple[Any, ...]], fail: dict[str, list[str]]) -> type[sf.WorkflowState]:
    class Hooked(sf.WorkflowState):
        log: list[str] = []

        def definition(self) -> sf.Section:
            return sf.S(
                sf.Wait(
                    "choose",
                    *(
                        sf.On(name, Hook(calls, name, fail=fail.get(name)), self.note(name))
                        for name in ("a", "b", "c")
                    ),
                ),
                self.note("end"),
            )

        def note(self, name: str) -> sf.Step:
            return sf.Step(f"after_{name}", lambda: self.log.append(name))

    return Hooked


def test_the_handler_receives_the_stored_request_with_setup_data() -> None:
    calls: list[tuple[Any, ...]] = []
    wf = hooked(calls, {})()
    state = sf.new_state("hook-1", "Hooked")
    sf.resume(wf, state, now=NOW)
    stored = armed(state, "b")
    assert stored.setup_data == "hook-b"
    assert sf.handle_callback("b", wf, state, {"x": 1}) == {"x": 1}
    assert calls[-1] == ("handle", "b", stored.model_dump())
    assert calls[-1][2] == {
        "workflow_id": "hook-1",
        "thread_id": sf.MAIN_THREAD,
        "name": "b",
        "pc": stored.pc,
        "setup_data": "hook-b",
    }


def test_the_other_events_are_torn_down_on_the_next_resume() -> None:
    calls: list[tuple[Any, ...]] = []
    wf = hooked(calls, {})()
    state = sf.new_state("hook-2", "Hooked")
    sf.resume(wf, state, now=NOW)
    calls.clear()
    sf.handle_callback("b", wf, state, None)
    assert [c[0] for c in calls] == ["handle"]  # nothing torn down yet
    assert [e.status for e in state.teardowns] == [sf.WaitEventStatus.PENDING_TEARDOWN] * 3
    kinds: list[sf.CheckpointType] = []
    sf.resume(wf, state, kinds.append, now=NOW)
    teardowns = sorted(c for c in calls if c[0] == "teardown")
    assert teardowns == [
        ("teardown", "a", False, "hook-a"),
        ("teardown", "b", True, "hook-b"),
        ("teardown", "c", False, "hook-c"),
    ]
    assert kinds[:3] == [sf.CheckpointType.AFTER_TEARDOWN] * 3
    assert state.teardowns == []
    assert wf.log == ["b", "end"]


def test_a_failed_setup_is_kept_and_the_event_still_accepts_its_callback() -> None:
    calls: list[tuple[Any, ...]] = []
    wf = hooked(calls, {"a": ["setup"]})()
    state = sf.new_state("hook-3", "Hooked")
    sf.resume(wf, state, now=NOW)
    thread = state.thread(sf.MAIN_THREAD)
    assert thread is not None
    by_name = {e.req.name: e for e in thread.wait_events}
    assert by_name["a"].status is sf.WaitEventStatus.SETUP_ERROR
    assert by_name["a"].error is not None and "cannot register a" in by_name["a"].error
    assert by_name["b"].status is sf.WaitEventStatus.SETUP
    assert state.status is sf.WorkflowStatus.WAITING
    sf.handle_callback("a", wf, state, None)
    sf.resume(wf, state, now=NOW)
    assert wf.log == ["a", "end"]
    # the failed event was never set up, so it is not torn down; the others are
    assert sorted(c[1:3] for c in calls if c[0] == "teardown") == [("b", False), ("c", False)]


def test_a_failed_setup_is_retried_on_every_resume_until_it_succeeds() -> None:
    calls: list[tuple[Any, ...]] = []
    failing = ["setup"]
    wf = hooked(calls, {"a": failing})()
    state = sf.new_state("hook-4", "Hooked")
    sf.resume(wf, state, now=NOW)
    for attempt in (2, 3):
        sf.resume(wf, state, now=NOW)
        assert calls.count(("setup", "a")) == attempt
        assert armed(state, "a").setup_data == ""
    assert calls.count(("setup", "b")) == 1  # set up once, never again
    failing.clear()
    kinds: list[sf.CheckpointType] = []
    sf.resume(wf, state, kinds.append, now=NOW)
    assert kinds == [sf.CheckpointType.AFTER_SETUP]
    event = next(e for e in state.threads[0].wait_events if e.req.name == "a")
    assert (event.status, event.error, event.req.setup_data) == (
        sf.WaitEventStatus.SETUP,
        None,
        "hook-a",
    )
    sf.resume(wf, state, now=NOW)
    assert calls.count(("setup", "a")) == 4
    assert wf.log == []


def test_a_failed_teardown_is_kept_and_retried_also_on_a_finished_workflow() -> None:
    calls: list[tuple[Any, ...]] = []
    failing = ["teardown"]
    wf = hooked(calls, {"c": failing})()
    state = sf.new_state("hook-5", "Hooked")
    sf.resume(wf, state, now=NOW)
    sf.handle_callback("a", wf, state, None)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.FINISHED  # the thread moved on regardless
    assert wf.log == ["a", "end"]
    [kept] = state.teardowns
    assert (kept.req.name, kept.status, kept.handled) == (
        "c",
        sf.WaitEventStatus.TEARDOWN_ERROR,
        False,
    )
    assert kept.error is not None and "cannot unregister c" in kept.error
    tries = calls.count(("teardown", "c", False, "hook-c"))
    for _ in range(2):
        data = wf.model_dump_json()
        sf.resume(wf, state, now=NOW)
        assert calls.count(("teardown", "c", False, "hook-c")) > tries
        tries = calls.count(("teardown", "c", False, "hook-c"))
        assert wf.model_dump_json() == data  # resume did nothing else
        assert state.status is sf.WorkflowStatus.FINISHED and len(state.teardowns) == 1
    failing.clear()
    kinds: list[sf.CheckpointType] = []
    sf.resume(wf, state, kinds.append, now=NOW)
    assert kinds == [sf.CheckpointType.AFTER_TEARDOWN]
    assert state.teardowns == []
    assert wf.log == ["a", "end"]


def test_cancel_tears_down_every_event_and_then_callbacks_are_refused() -> None:
    calls: list[tuple[Any, ...]] = []

    class Two(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(
                sf.Go("side", sf.S(sf.Wait("side_wait", sf.On("s", Hook(calls, "s"))))),
                sf.Wait("main_wait", sf.On("m", Hook(calls, "m")), sf.On("n", Hook(calls, "n"))),
            )

    wf, state = Two(), sf.new_state("two-1", Two)
    sf.resume(wf, state, now=NOW)
    kinds: list[sf.CheckpointType] = []
    sf.cancel(wf, state, kinds.append, now=NOW)
    assert state.status is sf.WorkflowStatus.CANCELLED
    assert state.threads == [] and state.teardowns == []
    assert sorted(c[1:3] for c in calls if c[0] == "teardown") == [
        ("m", False),
        ("n", False),
        ("s", False),
    ]
    assert kinds.count(sf.CheckpointType.AFTER_TEARDOWN) == 3
    info = refused(sf.WorkflowFinished, wf, state, lambda: sf.handle_callback("m", wf, state, None))
    assert "cancelled" in str(info.value)
    refused(sf.WorkflowFinished, wf, state, lambda: sf.cancel(wf, state, now=NOW))

"""Escalation: ``RetryPolicy(on_exhausted="escalate")`` hands a step that keeps failing to an
operator, who retries, skips or fails it (DESIGN §7).

Each semantic with plain ``resume``/``handle_callback`` and with the `WorkflowHarness`; the
listing in ``engine.inputs()`` on every store is tests/test_inputs.py's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import stmtflow as sf
from stmtflow.testing import WorkflowHarness

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OUTAGE: dict[str, int] = {}
"""How many more calls the integration fails (kept outside the data, which a failure rolls back)."""
KEYS: list[str] = []


class Down(Exception):
    pass


class Fatal(Exception):
    pass


POLICY = sf.RetryPolicy(
    max_attempts=2,
    initial_interval=timedelta(minutes=1),
    non_retryable=(Fatal,),
    on_exhausted="escalate",
)


class Sync(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("push", self.push, retry=POLICY),
            sf.Step("notify", lambda: self.log.append("notify")),
        )

    def push(self) -> None:
        KEYS.append(sf.current_step().key)
        left = OUTAGE.get("push", 0)
        if left:
            OUTAGE["push"] = left - 1
            raise (Fatal if OUTAGE.get("fatal") else Down)(f"upstream down ({left} left)")
        self.log.append("push")


@pytest.fixture(autouse=True)
def _reset() -> Any:
    OUTAGE.clear()
    KEYS.clear()
    yield
    OUTAGE.clear()


def escalated() -> tuple[Sync, sf.State]:
    """A Sync whose push failed both attempts and waits for an operator."""
    OUTAGE["push"] = 2
    wf, state = Sync(), sf.new_state("s-1", Sync)
    sf.resume(wf, state, now=NOW)
    sf.resume(wf, state, now=NOW + timedelta(minutes=1))
    return wf, state


def harness_escalated() -> WorkflowHarness[Sync]:
    OUTAGE["push"] = 2
    harness = WorkflowHarness(Sync, start=NOW).start()
    harness.advance(timedelta(minutes=1))
    return harness


def test_exhausted_attempts_wait_on_the_escalation_event() -> None:
    _wf, state = escalated()
    assert state.status is sf.WorkflowStatus.WAITING and state.error is None
    (thread,) = state.threads
    assert thread.status is sf.ThreadStatus.WAITING_EVENT and thread.cur_step == "push"
    assert [e.req.name for e in thread.wait_events] == ["push.escalation"]
    assert thread.attempt == 2 and thread.last_error == "Down: upstream down (1 left)"
    assert thread.retry_at is None
    harness = harness_escalated()
    assert harness.status is sf.WorkflowStatus.WAITING
    assert [p.name for p in harness.pending()] == ["push.escalation"]
    assert harness.advance(timedelta(days=30)) == []  # nothing runs until an operator answers


def test_why_it_waits_is_shown_on_the_instance_and_its_pending_event() -> None:
    harness = harness_escalated()
    instance = harness.engine.get("test")
    assert instance.error == "_main_/push (attempt 2): Down: upstream down (1 left)"
    (pending,) = harness.pending()
    assert pending.type == "Escalation" and pending.assignee is None
    assert pending.prompt == (
        "step 'push' failed after 2 attempt(s): Down: upstream down (1 left); "
        "retry, skip or fail it?"
    )
    assert pending.input_schema is not None
    assert pending.input_schema["properties"]["action"]["enum"] == ["retry", "skip", "fail"]


def test_retry_runs_the_step_again_with_fresh_attempts() -> None:
    wf, state = escalated()
    OUTAGE["push"] = 1  # fails once more: the fresh attempts absorb it
    assert sf.handle_callback("push.escalation", wf, state, {"action": "retry"}, now=NOW) == "retry"
    (thread,) = state.threads
    assert thread.status is sf.ThreadStatus.EXECUTING and thread.attempt == 0
    later = NOW + timedelta(hours=1)
    sf.resume(wf, state, now=later)
    assert state.threads[0].attempt == 1  # a retry is scheduled, not an escalation
    sf.resume(wf, state, now=later + timedelta(minutes=1))
    assert state.status is sf.WorkflowStatus.FINISHED and wf.log == ["push", "notify"]
    assert len(set(KEYS)) == 1  # every attempt of this execution of the step has one key
    harness = harness_escalated()
    harness.send("push.escalation", {"action": "retry"})
    assert harness.status is sf.WorkflowStatus.FINISHED and harness.log == ["push", "notify"]


def test_retry_that_fails_again_escalates_again() -> None:
    wf, state = escalated()
    OUTAGE["push"] = 2
    sf.handle_callback("push.escalation", wf, state, {"action": "retry"}, now=NOW)
    sf.resume(wf, state, now=NOW)
    sf.resume(wf, state, now=NOW + timedelta(minutes=1))
    assert [e.req.name for e in state.threads[0].wait_events] == ["push.escalation"]
    assert state.threads[0].attempt == 2


def test_skip_moves_on_as_if_the_step_succeeded() -> None:
    wf, state = escalated()
    sf.handle_callback("push.escalation", wf, state, {"action": "skip"}, now=NOW)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.FINISHED and wf.log == ["notify"]
    harness = harness_escalated()
    harness.send("push.escalation", {"action": "skip"})
    assert harness.log == ["notify"] and harness.engine.get("test").error is None


def test_fail_fails_the_workflow_with_the_last_error() -> None:
    wf, state = escalated()
    sf.handle_callback("push.escalation", wf, state, {"action": "fail"}, now=NOW)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.FAILED and wf.log == []
    assert state.error is not None
    assert "'push'" in state.error and "upstream down" in state.error
    assert "an operator chose to fail it" in state.error
    harness = harness_escalated()
    harness.send("push.escalation", {"action": "fail"})
    assert harness.status is sf.WorkflowStatus.FAILED and harness.pending() == []
    with pytest.raises(sf.WorkflowFinished):
        harness.send("push.escalation", {"action": "retry"})


def test_a_workflow_an_operator_failed_can_be_restarted() -> None:
    wf, state = escalated()
    sf.handle_callback("push.escalation", wf, state, {"action": "fail"}, now=NOW)
    sf.restart(state)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.FINISHED and wf.log == ["push", "notify"]


@pytest.mark.parametrize(
    "bad", [{"action": "retry later"}, {}, {"action": "skip", "why": "x"}, "skip", None]
)
def test_an_invalid_answer_changes_nothing(bad: Any) -> None:
    wf, state = escalated()
    before = (wf.model_dump_json(), state.model_dump_json())
    with pytest.raises(sf.CallbackInputError) as caught:
        sf.handle_callback("push.escalation", wf, state, bad, now=NOW)
    assert caught.value.problems
    assert (wf.model_dump_json(), state.model_dump_json()) == before


def test_a_non_retryable_error_escalates_at_once() -> None:
    OUTAGE.update(push=1, fatal=1)
    wf, state = Sync(), sf.new_state("s-1", Sync)
    sf.resume(wf, state, now=NOW)
    (thread,) = state.threads
    assert thread.attempt == 1 and thread.last_error is not None
    assert thread.last_error.startswith("Fatal")
    assert [e.req.name for e in thread.wait_events] == ["push.escalation"]


def test_fail_is_the_default_and_unknown_choices_are_refused() -> None:
    assert sf.RetryPolicy().on_exhausted == "fail"
    with pytest.raises(ValueError, match="on_exhausted"):
        sf.RetryPolicy(on_exhausted="page someone")  # type: ignore[arg-type]


def test_the_escalation_event_exists_only_while_escalated() -> None:
    OUTAGE["push"] = 1
    wf, state = Sync(), sf.new_state("s-1", Sync)
    sf.resume(wf, state, now=NOW)  # one failed attempt: a retry is scheduled
    with pytest.raises(sf.NotWaiting):
        sf.handle_callback(
            sf.CallbackRequest(name="push.escalation", thread_id=sf.MAIN_THREAD), wf, state, {}
        )
    with pytest.raises(sf.UnknownCallback):
        sf.handle_callback("push.escalation", wf, state, {"action": "skip"}, now=NOW)


def test_a_stale_pc_is_refused() -> None:
    wf, state = escalated()
    (event,) = state.threads[0].wait_events
    stale = sf.CallbackRequest(name="push.escalation", pc=event.req.pc - 1)
    with pytest.raises(sf.StaleCallback):
        sf.handle_callback(stale, wf, state, {"action": "skip"}, now=NOW)


def test_the_state_survives_a_save_and_reload() -> None:
    wf, state = escalated()
    loaded = sf.load_state(state.model_dump_json())
    wf2 = Sync.model_validate_json(wf.model_dump_json())
    sf.handle_callback("push.escalation", wf2, loaded, {"action": "skip"}, now=NOW)
    sf.resume(wf2, loaded, now=NOW)
    assert loaded.status is sf.WorkflowStatus.FINISHED


def test_a_definition_without_the_step_is_a_mismatch() -> None:
    wf, state = escalated()

    class Renamed(Sync):
        def definition(self) -> sf.Section:
            return sf.S(sf.Step("upload", self.push, retry=POLICY))

    with pytest.raises(sf.DefinitionMismatch, match="'push' no longer exists"):
        sf.resume(Renamed(), state, now=NOW)
    assert sf.check_compatibility(wf.definition(), [state]) == []


def test_cancel_ends_an_escalated_instance() -> None:
    harness = harness_escalated()
    harness.cancel()
    assert harness.status is sf.WorkflowStatus.CANCELLED and harness.inputs() == []


def test_the_engines_default_policy_can_escalate() -> None:
    class Plain(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Step("push", Sync().push))

    OUTAGE["push"] = 1
    policy = sf.RetryPolicy(max_attempts=1, on_exhausted="escalate")
    harness = WorkflowHarness(Plain, start=NOW, default_retry=policy).start()
    assert [p.name for p in harness.pending()] == ["push.escalation"]
    harness.send("push.escalation", {"action": "retry"})
    assert harness.status is sf.WorkflowStatus.FINISHED


def test_steps_in_threads_escalate_on_their_own() -> None:
    class Both(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(
                sf.Go("side", sf.S(sf.Step("push", Sync().push, retry=POLICY))),
                sf.Sleep("pause", timedelta(hours=1)),
            )

    OUTAGE["push"] = 2
    harness = WorkflowHarness(Both, start=NOW).start()
    harness.advance(timedelta(minutes=1))
    (row,) = harness.inputs()
    assert (row.event, row.thread_id) == ("push.escalation", "side")
    harness.send("push.escalation", {"action": "skip"}, thread_id="side")
    assert harness.inputs() == [] and harness.status is sf.WorkflowStatus.WAITING


def test_the_policy_json_says_it_escalates() -> None:
    tree = Sync().definition()
    (push, notify) = sf.definition_json(tree)["body"]
    assert push["retry"]["on_exhausted"] == "escalate"
    assert notify["retry"] is None
    assert "then an operator" in sf.to_mermaid(tree)


def test_a_name_taken_from_a_steps_escalation_event_is_a_definition_error() -> None:
    with pytest.raises(sf.DefinitionError) as caught:
        sf.validate(
            sf.S(sf.Step("push", print), sf.Wait("w", sf.OnEvent("push.escalation", print)))
        )
    assert caught.value.issues == [
        "name 'push.escalation' of On 'push.escalation' at S[1].On('push.escalation') "
        "is taken by Step 'push' at S[0] (its escalation event)"
    ]


class Batch(sf.WorkflowState):
    """Escalation inside a `ForEach` item's body (a body built from the thread's arg)."""

    booked: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.ForEach(
                "each",
                ["a", "b", "c"],
                lambda item: sf.S(
                    sf.Step(
                        "book",
                        lambda: self.book(item),
                        retry=sf.RetryPolicy(max_attempts=1, on_exhausted="escalate"),
                    )
                ),
                max_concurrency=2,
            ),
        )

    def book(self, item: str) -> None:
        if OUTAGE.get(item, 0) > 0:
            OUTAGE[item] -= 1
            raise Down(f"{item}: down")
        self.booked.append(item)


def test_a_step_in_a_foreach_body_escalates_to_its_own_thread() -> None:
    OUTAGE.clear()
    OUTAGE.update(b=1, c=1)
    h = WorkflowHarness(Batch).start()
    asked = {(i.thread_id, i.event) for i in h.inputs()}
    assert asked == {("each[1]", "book.escalation"), ("each[2]", "book.escalation")}
    assert h.inputs()[0].input_schema["properties"]["action"]["enum"] == ["retry", "skip", "fail"]
    h.send("book.escalation", {"action": "retry"}, thread_id="each[1]")
    assert [(i.thread_id, i.event) for i in h.inputs()] == [("each[2]", "book.escalation")]
    h.send("book.escalation", {"action": "skip"}, thread_id="each[2]")
    assert h.status is sf.WorkflowStatus.FINISHED
    assert h.data.booked == ["a", "b"]
    assert h.inputs() == []

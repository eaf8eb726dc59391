"""`HumanInput` and `Ask`: a person's typed form, checked before anything changes.

Each semantic is checked with plain ``resume``/``handle_callback`` and with the
`WorkflowHarness` (the engine on the memory store); the stores' index of these questions is
tests/test_inputs.py's.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, Field

import stmtflow as sf
from stmtflow.testing import WorkflowHarness

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Expense(BaseModel):
    amount: int = Field(gt=0)
    reason: str = Field(min_length=3)


class Claim(sf.WorkflowState):
    manager: str = "ana"
    approved: int | None = None
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Ask(
                "review",
                Expense,
                self.on_expense,
                prompt=lambda: f"Approve the claim? (so far: {self.log})",
                assignee=self.manager,
                timeout=timedelta(days=2),
            ),
            sf.Step("book", lambda: self.log.append(f"book {self.approved}")),
        )

    def on_expense(self, form: Expense) -> str:
        assert isinstance(form, Expense)  # the parsed model, not the raw JSON
        self.approved = form.amount
        return f"approved {form.amount}"


def started() -> tuple[Claim, sf.State]:
    wf, state = Claim(), sf.new_state("c-1", Claim)
    sf.resume(wf, state, now=NOW)
    return wf, state


def test_ask_is_a_wait_on_its_answer_and_timeout_events() -> None:
    ask = sf.Ask("review", Expense, prompt="Approve?", timeout=timedelta(hours=1))
    assert isinstance(ask, sf.Wait)
    assert [on.event for on in ask.events] == ["review.answer", "review.timeout"]
    assert isinstance(ask.events[0].handler, sf.HumanInput)
    assert sf.Ask("quick", Expense, prompt="?").timeout_event is None
    assert [on.event for on in sf.Ask("quick", Expense, prompt="?").events] == ["quick.answer"]


def test_the_input_schema_is_the_models_json_schema() -> None:
    form = sf.HumanInput(Expense, prompt="Approve?")
    assert form.schemas()[0] == Expense.model_json_schema()
    harness = WorkflowHarness(Claim, start=NOW).start()
    schemas = {p.name: p.input_schema for p in harness.pending()}
    assert schemas["review.answer"] == Expense.model_json_schema()


def test_setup_records_the_prompt_assignee_and_time() -> None:
    _, state = started()
    (thread,) = state.threads
    answer = next(e for e in thread.wait_events if e.req.name == "review.answer")
    assert answer.type == "HumanInput" and answer.status is sf.WaitEventStatus.SETUP
    harness = WorkflowHarness(Claim, start=NOW, data={"manager": "bo"}).start()
    (pending,) = [p for p in harness.pending() if p.name == "review.answer"]
    assert (pending.prompt, pending.assignee) == ("Approve the claim? (so far: [])", "bo")


def test_fn_receives_the_parsed_model_and_its_result_goes_back() -> None:
    wf, state = started()
    out = sf.handle_callback("review.answer", wf, state, {"amount": 40, "reason": "taxi"}, now=NOW)
    assert out == "approved 40"
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.FINISHED and wf.log == ["book 40"]
    harness = WorkflowHarness(Claim, start=NOW).start()
    assert harness.send("review.answer", {"amount": 7, "reason": "lunch"}) == "approved 7"
    assert harness.log == ["book"] and harness.data.approved == 7


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": "a lot", "reason": "x"},
        {"amount": -5},
        "not an object",
        None,
    ],
)
def test_invalid_input_lists_each_problem_and_changes_nothing(bad: Any) -> None:
    wf, state = started()
    before = (wf.model_dump_json(), state.model_dump_json())
    with pytest.raises(sf.CallbackInputError) as caught:
        sf.handle_callback("review.answer", wf, state, bad, now=NOW)
    assert (wf.model_dump_json(), state.model_dump_json()) == before
    assert caught.value.problems and "review.answer" in str(caught.value)
    harness = WorkflowHarness(Claim, start=NOW).start()
    version = harness.engine.get("test").version
    with pytest.raises(sf.CallbackInputError):
        harness.send("review.answer", bad)
    assert harness.engine.get("test").version == version and harness.data.approved is None


def test_every_problem_is_listed_at_once() -> None:
    wf, state = started()
    with pytest.raises(sf.CallbackInputError) as caught:
        sf.handle_callback("review.answer", wf, state, {"amount": "x", "reason": 3}, now=NOW)
    problems = caught.value.problems
    assert len(problems) == 2
    assert any(p.startswith("amount:") for p in problems)
    assert any(p.startswith("reason:") for p in problems)


def test_a_constraint_only_pydantic_checks_is_reported_too() -> None:
    wf, state = started()
    with pytest.raises(sf.CallbackInputError) as caught:
        sf.handle_callback("review.answer", wf, state, {"amount": 0, "reason": "ok!"}, now=NOW)
    assert any("amount" in p for p in caught.value.problems)


def test_on_timeout_fn_is_not_called_and_the_thread_goes_on() -> None:
    wf, state = started()
    sf.handle_callback("review.timeout", wf, state, None, now=NOW)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.FINISHED
    assert wf.approved is None and wf.log == ["book None"]
    harness = WorkflowHarness(Claim, start=NOW).start()
    assert harness.advance(timedelta(days=2)) == ["review.timeout"]
    assert harness.status is sf.WorkflowStatus.FINISHED and harness.data.approved is None


def test_human_input_in_a_plain_wait_and_without_fn() -> None:
    class Gate(sf.WorkflowState):
        def definition(self) -> sf.Section:
            form = sf.HumanInput(Expense, prompt="Fill in the form", assignee="ops")
            return sf.S(sf.Wait("gate", sf.On("form", form), sf.On("late", sf.Timer(hours=1))))

    harness = WorkflowHarness(Gate, start=NOW).start()
    assert harness.send("form", {"amount": 1, "reason": "why not"}) is None
    assert harness.status is sf.WorkflowStatus.FINISHED


def test_async_fn_under_aresume() -> None:
    class Later(sf.WorkflowState):
        got: int = 0

        def definition(self) -> sf.Section:
            return sf.S(sf.Ask("ask", Expense, self.take, prompt="?"))

        async def take(self, form: Expense) -> int:
            self.got = form.amount
            return form.amount

    async def run() -> tuple[int, Later, sf.State]:
        wf, state = Later(), sf.new_state("l-1", Later)
        await sf.aresume(wf, state, now=NOW)
        out = await sf.ahandle_callback("ask.answer", wf, state, {"amount": 3, "reason": "abc"})
        await sf.aresume(wf, state, now=NOW)
        return out, wf, state

    out, wf, state = asyncio.run(run())
    assert (out, wf.got, state.status) == (3, 3, sf.WorkflowStatus.FINISHED)


def test_bad_asks_are_definition_errors_listing_every_problem() -> None:
    with pytest.raises(sf.DefinitionError) as caught:
        sf.validate(
            sf.S(
                sf.Ask("a", dict, prompt="", timeout=timedelta(0)),  # type: ignore[arg-type]
                sf.Ask("b", Expense, fn=3, prompt="?", assignee=4),  # type: ignore[arg-type]
            )
        )
    text = "\n".join(caught.value.issues)
    for part in ("model must be", "prompt must be", "timeout must be", "fn must be", "assignee"):
        assert part in text


def test_human_input_refuses_bad_arguments_at_once() -> None:
    with pytest.raises(TypeError, match="model must be a pydantic BaseModel"):
        sf.HumanInput(int, prompt="?")  # type: ignore[arg-type]


def test_a_setup_whose_lazy_prompt_raises_is_kept_on_the_event() -> None:
    class Broken(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Ask("ask", Expense, prompt=lambda: 1 / 0))  # type: ignore[arg-type,return-value]

    wf, state = Broken(), sf.new_state("b-1", Broken)
    sf.resume(wf, state, now=NOW)
    (event,) = state.threads[0].wait_events
    assert event.status is sf.WaitEventStatus.SETUP_ERROR
    assert "ZeroDivisionError" in str(event.error)


def test_ask_json_and_diagram() -> None:
    tree = Claim().definition()
    (ask, _) = sf.definition_json(tree)["body"]
    assert ask == {
        "type": "Ask",
        "name": "review",
        "event": "review.answer",
        "model": "Expense",
        "prompt": "lazy",
        "assignee": "ana",
        "timeout": 172800,
        "timeout_event": "review.timeout",
    }
    chart = sf.to_mermaid(tree)
    assert "Ask review (ana)" in chart and "review.timeout · after 2d" in chart


def test_compare_definitions_sees_an_asks_events() -> None:
    from stmtflow.analysis._compat import compare_definitions

    old = sf.definition_json(sf.S(sf.Ask("review", Expense, prompt="?", timeout=timedelta(1))))
    new = sf.definition_json(sf.S(sf.Ask("check", Expense, prompt="?")))
    diff = compare_definitions(old, new)
    assert diff.removed == {
        "review": "Ask",
        "review.answer": "On(HumanInput)",
        "review.timeout": "On(Timer)",
    }
    assert diff.added == {"check": "Ask", "check.answer": "On(HumanInput)"}


def test_a_thread_waiting_at_an_ask_fits_the_same_definition_and_not_another() -> None:
    wf, state = started()
    assert sf.check_compatibility(wf.definition(), [state]) == []
    renamed = sf.S(sf.Ask("approval", Expense, prompt="?"))
    (problem,) = sf.check_compatibility(renamed, [state])
    assert (problem.kind, problem.name) == ("position", "review")

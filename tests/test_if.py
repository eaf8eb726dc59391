"""`If` / `ElseIf` / `Else`, and how conditions see the data (DESIGN §3.3).

An eager condition is a bool computed when ``definition()`` runs, and ``definition()`` is called
again after every action; a lazy one is a callable evaluated when the thread reaches it. Either
way a condition sees the data as the latest action left it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class Grade(sf.WorkflowState):
    score: int
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.If(self.score >= 90, self.note("A"))
            .ElseIf(self.score >= 80, self.note("B"))
            .ElseIf(self.score >= 70, self.note("C"))
            .Else(self.note("F")),
            self.note("done"),
        )

    def note(self, what: str) -> sf.Step:
        return sf.Step(f"note_{what}", lambda: self.log.append(what))


def run(wf: sf.WorkflowState) -> sf.State:
    return sf.resume(wf, sf.new_state("wf-1", type(wf)), now=NOW)


@pytest.mark.parametrize(
    ("score", "log"),
    [
        (95, ["A", "done"]),
        (85, ["B", "done"]),
        (75, ["C", "done"]),
        (10, ["F", "done"]),
    ],
)
def test_the_first_true_branch_runs_else_the_else(score: int, log: list[str]) -> None:
    wf = Grade(score=score)
    run(wf)

    assert wf.log == log


class NoElse(sf.WorkflowState):
    flag: bool
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.If(self.flag, sf.Step("yes", lambda: self.log.append("yes"))),
            sf.Step("after", lambda: self.log.append("after")),
        )


def test_without_else_a_false_if_runs_nothing_and_moves_on() -> None:
    wf = NoElse(flag=False)
    run(wf)

    assert wf.log == ["after"]


def test_a_true_if_without_else_runs_its_body() -> None:
    wf = NoElse(flag=True)
    run(wf)

    assert wf.log == ["yes", "after"]


class EmptyBranch(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.If(True).Else(sf.Step("no", lambda: self.log.append("no"))),
            sf.Step("after", lambda: self.log.append("after")),
        )


def test_an_empty_true_branch_skips_the_else() -> None:
    wf = EmptyBranch()
    run(wf)

    assert wf.log == ["after"]


class Eager(sf.WorkflowState):
    """``approve`` sets ``approved``; the eager ``If`` after it must see that."""

    approved: bool = False
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("approve", self.approve),
            sf.If(self.approved, sf.Step("ship", lambda: self.log.append("ship"))).Else(
                sf.Step("refund", lambda: self.log.append("refund"))
            ),
        )

    def approve(self) -> None:
        self.approved = True


def test_an_eager_condition_sees_the_data_the_previous_step_left() -> None:
    wf = Eager()
    run(wf)

    assert wf.log == ["ship"]


class Lazy(sf.WorkflowState):
    approved: bool = False
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("approve", self.approve),
            sf.If(lambda: self.approved, sf.Step("ship", lambda: self.log.append("ship"))).Else(
                sf.Step("refund", lambda: self.log.append("refund"))
            ),
        )

    def approve(self) -> None:
        self.approved = True


def test_a_lazy_condition_is_evaluated_when_the_thread_reaches_it() -> None:
    wf = Lazy()
    run(wf)

    assert wf.log == ["ship"]


class Seen(sf.WorkflowState):
    """Conditions record the data they saw, to show they run when reached and not before."""

    n: int = 0
    seen: list[int] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("one", self.bump),
            sf.If(lambda: self.saw(), sf.Step("two", self.bump)),
            sf.If(lambda: self.saw(), sf.Step("three", self.bump)),
        )

    def bump(self) -> None:
        self.n += 1

    def saw(self) -> bool:
        self.seen.append(self.n)
        return True


def test_each_lazy_condition_runs_once_when_reached() -> None:
    wf = Seen()
    run(wf)

    assert wf.seen == [1, 2]
    assert wf.n == 3


class LazyRaises(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("first", lambda: self.log.append("first")),
            sf.If(self.broken, sf.Step("second", lambda: self.log.append("second"))),
        )

    def broken(self) -> bool:
        raise KeyError("missing")


def test_a_lazy_condition_that_raises_is_an_execution_error_and_changes_nothing() -> None:
    wf = LazyRaises()
    state = sf.new_state("wf-1", LazyRaises)
    saved: list[tuple[str, str]] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        saved.append((wf.model_dump_json(), state.model_dump_json()))

    with pytest.raises(sf.ExecutionError) as caught:
        sf.resume(wf, state, checkpoint, now=NOW)

    assert isinstance(caught.value.__cause__, KeyError)
    assert "wf-1" in str(caught.value)
    assert saved[-1] == (wf.model_dump_json(), state.model_dump_json())
    assert state.threads[0].cur_step == "first"
    assert wf.log == ["first"]


class DefinitionRaises(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        if self.log:
            raise RuntimeError("cannot build")
        return sf.S(
            sf.Step("first", lambda: self.log.append("first")),
            sf.Step("second", lambda: self.log.append("second")),
        )


def test_definition_raising_is_an_execution_error() -> None:
    wf = DefinitionRaises()
    state = sf.new_state("wf-1", DefinitionRaises)
    saved: list[tuple[str, str]] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        saved.append((wf.model_dump_json(), state.model_dump_json()))

    with pytest.raises(sf.ExecutionError) as caught:
        sf.resume(wf, state, checkpoint, now=NOW)

    assert isinstance(caught.value.__cause__, RuntimeError)
    assert "definition()" in str(caught.value)
    assert saved[-1] == (wf.model_dump_json(), state.model_dump_json())
    assert wf.log == ["first"]


def test_definition_raising_before_anything_runs_is_an_execution_error() -> None:
    wf = DefinitionRaises(log=["poisoned"])
    state = sf.new_state("wf-1", DefinitionRaises)
    before = state.model_dump_json()

    with pytest.raises(sf.ExecutionError):
        sf.resume(wf, state, now=NOW)

    assert state.model_dump_json() == before

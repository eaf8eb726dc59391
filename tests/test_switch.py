"""`Switch` / `Case` / `Default`: the first true case runs, else the default, else nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class Route(sf.WorkflowState):
    size: int
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Switch(
                sf.Case(self.size > 100, self.note("freight")),
                sf.Case(self.size > 10, self.note("parcel")),
                sf.Case(self.size > 0, self.note("letter")),
                sf.Default(self.note("nothing")),
            ),
            self.note("done"),
        )

    def note(self, what: str) -> sf.Step:
        return sf.Step(what, lambda: self.log.append(what))


def run(wf: sf.WorkflowState) -> sf.State:
    return sf.resume(wf, sf.new_state("wf-1", type(wf)), now=NOW)


@pytest.mark.parametrize(
    ("size", "log"),
    [
        (500, ["freight", "done"]),
        (50, ["parcel", "done"]),
        (5, ["letter", "done"]),
    ],
)
def test_only_the_first_true_case_runs(size: int, log: list[str]) -> None:
    wf = Route(size=size)
    run(wf)

    assert wf.log == log


def test_the_default_runs_when_no_case_is_true() -> None:
    wf = Route(size=0)
    run(wf)

    assert wf.log == ["nothing", "done"]


class NoDefault(sf.WorkflowState):
    kind: str
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Switch(
                sf.Case(self.kind == "a", sf.Step("a", lambda: self.log.append("a"))),
                sf.Case(self.kind == "b", sf.Step("b", lambda: self.log.append("b"))),
            ),
            sf.Step("done", lambda: self.log.append("done")),
        )


def test_no_true_case_and_no_default_runs_nothing_and_moves_on() -> None:
    wf = NoDefault(kind="z")
    run(wf)

    assert wf.log == ["done"]


class Steps(sf.WorkflowState):
    """A case body with several steps, and lazy conditions that see the latest data."""

    stage: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("start", self.advance),
            sf.Switch(
                sf.Case(lambda: self.stage == 0, self.note("zero")),
                sf.Case(
                    lambda: self.stage == 1,
                    sf.Step("one", self.advance),
                    sf.Step("one_more", lambda: self.log.append(f"stage {self.stage}")),
                ),
                sf.Default(self.note("other")),
            ),
        )

    def advance(self) -> None:
        self.stage += 1

    def note(self, what: str) -> sf.Step:
        return sf.Step(what, lambda: self.log.append(what))


def test_lazy_cases_see_the_data_the_previous_step_left_and_the_whole_body_runs() -> None:
    wf = Steps()
    state = run(wf)

    assert wf.log == ["stage 2"]
    assert state.status is sf.WorkflowStatus.FINISHED


class Counting(sf.WorkflowState):
    """Records which lazy cases were evaluated: none after the first true one."""

    evaluated: list[str] = []
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Switch(
                sf.Case(lambda: self.check("a", False), sf.Step("a", lambda: None)),
                sf.Case(lambda: self.check("b", True), sf.Step("b", lambda: self.log.append("b"))),
                sf.Case(lambda: self.check("c", True), sf.Step("c", lambda: self.log.append("c"))),
            ),
        )

    def check(self, name: str, result: bool) -> bool:
        self.evaluated.append(name)
        return result


def test_cases_after_the_first_true_one_are_not_evaluated() -> None:
    wf = Counting()
    run(wf)

    assert wf.log == ["b"]
    assert wf.evaluated == ["a", "b"]

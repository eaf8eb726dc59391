"""`For`, `Break`, `Continue` (DESIGN §3.4).

`Break` and `Continue` act at once, like Python: the statements after them in the body do not
run. They belong to the innermost `For`; `Continue` checks the loop's condition again.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def run(wf: sf.WorkflowState) -> sf.State:
    return sf.resume(wf, sf.new_state("wf-1", type(wf)), now=NOW)


class Count(sf.WorkflowState):
    n: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For("loop", self.n < 3, sf.Step("inc", self.inc)),
            sf.Step("done", lambda: self.log.append("done")),
        )

    def inc(self) -> None:
        self.n += 1
        self.log.append(f"inc {self.n}")


def test_a_loop_runs_while_its_eager_condition_holds() -> None:
    wf = Count()
    state = run(wf)

    assert wf.log == ["inc 1", "inc 2", "inc 3", "done"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_a_loop_whose_condition_is_false_at_first_never_runs() -> None:
    wf = Count(n=3)
    run(wf)

    assert wf.log == ["done"]


class BreakAtOnce(sf.WorkflowState):
    n: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "loop",
                True,
                sf.Step("inc", self.inc),
                sf.If(lambda: self.n == 2, sf.Break()),
                sf.Step("after_if", lambda: self.log.append(f"after_if {self.n}")),
            ),
            sf.Step("done", lambda: self.log.append("done")),
        )

    def inc(self) -> None:
        self.n += 1
        self.log.append(f"inc {self.n}")


def test_break_leaves_the_loop_at_once() -> None:
    wf = BreakAtOnce()
    run(wf)

    assert wf.log == ["inc 1", "after_if 1", "inc 2", "done"]


class ContinueAtOnce(sf.WorkflowState):
    n: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "loop",
                lambda: self.n < 4,
                sf.Step("inc", self.inc),
                sf.If(lambda: self.n % 2 == 0, sf.Continue()),
                sf.Step("odd", lambda: self.log.append(f"odd {self.n}")),
            ),
            sf.Step("done", lambda: self.log.append("done")),
        )

    def inc(self) -> None:
        self.n += 1
        self.log.append(f"inc {self.n}")


def test_continue_starts_the_next_iteration_at_once() -> None:
    wf = ContinueAtOnce()
    run(wf)

    assert wf.log == ["inc 1", "odd 1", "inc 2", "inc 3", "odd 3", "inc 4", "done"]


class ContinueRechecks(sf.WorkflowState):
    n: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "loop",
                lambda: self.n < 2,
                sf.Step("inc", self.inc),
                sf.Continue(),
                sf.Step("never", lambda: self.log.append("never")),
            ),
            sf.Step("done", lambda: self.log.append("done")),
        )

    def inc(self) -> None:
        self.n += 1
        self.log.append(f"inc {self.n}")


def test_continue_checks_the_condition_again() -> None:
    wf = ContinueRechecks()
    state = run(wf)

    assert wf.log == ["inc 1", "inc 2", "done"]
    assert state.status is sf.WorkflowStatus.FINISHED


class Nested(sf.WorkflowState):
    outer: int = 0
    inner: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "rows",
                lambda: self.outer < 2,
                sf.Step("row", self.row),
                sf.For(
                    "cols",
                    True,
                    sf.Step("col", self.col),
                    sf.If(lambda: self.inner == 1, sf.Continue()),
                    sf.If(lambda: self.inner >= 2, sf.Break()),
                    sf.Step("never_in_cols", lambda: self.log.append("never_in_cols")),
                ),
                sf.Step("row_end", lambda: self.log.append(f"row_end {self.outer}")),
            ),
            sf.Step("done", lambda: self.log.append("done")),
        )

    def row(self) -> None:
        self.outer += 1
        self.inner = 0
        self.log.append(f"row {self.outer}")

    def col(self) -> None:
        self.inner += 1
        self.log.append(f"col {self.inner}")


def test_break_and_continue_belong_to_the_innermost_loop() -> None:
    wf = Nested()
    run(wf)

    assert wf.log == [
        "row 1",
        "col 1",
        "col 2",
        "row_end 1",
        "row 2",
        "col 1",
        "col 2",
        "row_end 2",
        "done",
    ]


class BreakFromNestedIf(sf.WorkflowState):
    """``Break`` deep inside an ``If`` and a ``Switch`` still leaves the loop around them."""

    n: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "loop",
                True,
                sf.Step("inc", self.inc),
                sf.Switch(
                    sf.Case(lambda: self.n >= 2, sf.If(True, sf.Break())),
                    sf.Default(sf.Step("keep_going", lambda: self.log.append("keep_going"))),
                ),
            ),
            sf.Step("done", lambda: self.log.append("done")),
        )

    def inc(self) -> None:
        self.n += 1
        self.log.append(f"inc {self.n}")


def test_break_inside_nested_branches_leaves_the_loop() -> None:
    wf = BreakFromNestedIf()
    run(wf)

    assert wf.log == ["inc 1", "keep_going", "inc 2", "done"]


class ReachesNoStep(sf.WorkflowState):
    """The body has a step, but behind a condition that is false: an iteration does nothing."""

    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("first", lambda: self.log.append("first")),
            sf.For("spin", True, sf.If(lambda: False, sf.Step("never", lambda: None))),
        )


def test_an_iteration_that_reaches_no_step_at_run_time_is_a_definition_error() -> None:
    wf = ReachesNoStep()
    state = sf.new_state("wf-1", ReachesNoStep)

    with pytest.raises(sf.DefinitionError, match="spin"):
        sf.resume(wf, state, now=NOW)

    assert wf.log == ["first"]
    assert state.threads[0].cur_step == "first"


class NoStepInBody(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.For("spin", True, sf.If(True, sf.Break())))


def test_a_loop_whose_body_holds_no_step_is_a_definition_error() -> None:
    with pytest.raises(sf.DefinitionError):
        sf.resume(NoStepInBody(), sf.new_state("wf-1", NoStepInBody), now=NOW)


class BreakOutside(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("a", lambda: None), sf.Break())


def test_break_outside_a_loop_is_a_definition_error() -> None:
    with pytest.raises(sf.DefinitionError):
        sf.resume(BreakOutside(), sf.new_state("wf-1", BreakOutside), now=NOW)


class ContinueInGoInLoop(sf.WorkflowState):
    """A ``Go`` body is a thread of its own: the loop around the ``Go`` is not its loop."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "loop",
                True,
                sf.Go("child", sf.S(sf.Step("a", lambda: None), sf.Continue())),
                sf.Step("b", lambda: None),
            )
        )


def test_continue_in_a_go_body_does_not_belong_to_the_loop_around_the_go() -> None:
    with pytest.raises(sf.DefinitionError):
        sf.resume(ContinueInGoInLoop(), sf.new_state("wf-1", ContinueInGoInLoop), now=NOW)


class LoopWithWait(sf.WorkflowState):
    """A loop whose iterations block on an event each time."""

    pings: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "listen",
                lambda: self.pings < 2,
                sf.Wait("next", sf.OnEvent("ping", self.ping)),
                sf.Step("pong", lambda: self.log.append(f"pong {self.pings}")),
            ),
            sf.Step("done", lambda: self.log.append("done")),
        )

    def ping(self) -> None:
        self.pings += 1


def test_a_loop_can_block_on_an_event_each_iteration() -> None:
    wf = LoopWithWait()
    state = run(wf)
    assert state.status is sf.WorkflowStatus.WAITING

    for _ in range(2):
        sf.handle_callback("ping", wf, state, now=NOW)
        sf.resume(wf, state, now=NOW)

    assert wf.log == ["pong 1", "pong 2", "done"]
    assert state.status is sf.WorkflowStatus.FINISHED


class EventControlsLoop(sf.WorkflowState):
    """``Break`` and ``Continue`` in the body of a `Wait`'s event act on the loop around it."""

    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "listen",
                True,
                sf.Wait(
                    "command",
                    sf.OnEvent("stop", lambda: None, sf.Break(), self.note("after_break")),
                    sf.OnEvent("skip", lambda: None, sf.Continue(), self.note("after_continue")),
                    sf.OnEvent("work", lambda: None),
                ),
                self.note("worked"),
            ),
            self.note("done"),
        )

    def note(self, what: str) -> sf.Step:
        return sf.Step(what, lambda: self.log.append(what))


def test_break_and_continue_in_an_event_body_act_on_the_loop_around_the_wait() -> None:
    wf = EventControlsLoop()
    state = run(wf)

    for event in ["work", "skip", "work", "stop"]:
        sf.handle_callback(event, wf, state, now=NOW)
        sf.resume(wf, state, now=NOW)

    assert wf.log == ["worked", "worked", "done"]
    assert state.status is sf.WorkflowStatus.FINISHED

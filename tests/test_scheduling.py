"""Scheduling: which thread moves when (DESIGN §3.1), definition rebuilds (§2, §3.3), and the
action limit (§3.10).

The first runnable thread in creation order (main first) moves until it blocks or ends; ``Go``
makes the new thread runnable but the parent goes on. When no thread can move, ``WaitFor``
conditions are checked in thread order and the first true one wakes its thread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import pytest

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class Team(sf.WorkflowState):
    """Main starts ``a`` and ``b``; ``a`` starts ``c``; main waits for all three."""

    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            self.note("m1"),
            sf.Go(
                "a",
                sf.S(
                    self.note("a1"),
                    sf.Go("c", sf.S(self.note("c1"), self.note("c2"))),
                    self.note("a2"),
                    sf.WaitFor("a_waits", lambda: "b1" in self.log),
                    self.note("a3"),
                ),
            ),
            sf.Go("b", sf.S(self.note("b1"), self.note("b2"))),
            self.note("m2"),
            sf.WaitFor("all_done", lambda: {"a3", "b2", "c2"} <= set(self.log)),
            self.note("m3"),
        )

    def note(self, what: str) -> sf.Step:
        return sf.Step(what, lambda: self.log.append(what))


def test_main_first_parent_goes_on_then_threads_in_creation_order() -> None:
    wf = Team()
    state = sf.resume(wf, sf.new_state("wf-1", Team), now=NOW)

    assert wf.log == ["m1", "m2", "a1", "a2", "b1", "b2", "c1", "c2", "a3", "m3"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_threads_are_kept_in_creation_order() -> None:
    wf = Team()
    state = sf.new_state("wf-1", Team)
    orders: list[list[str]] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        orders.append([t.id for t in state.threads])

    sf.resume(wf, state, checkpoint, now=NOW)

    assert ["_main_", "a", "b", "c"] in orders
    for order in orders:
        assert order == [t for t in ["_main_", "a", "b", "c"] if t in order]


def trace(wf: sf.WorkflowState) -> tuple[list[str], list[str], str, str]:
    state = sf.new_state("wf-1", type(wf))
    kinds: list[str] = []
    states: list[str] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        kinds.append(kind.value)
        states.append(state.model_dump_json())

    sf.resume(wf, state, checkpoint, now=NOW)
    return kinds, states, wf.model_dump_json(), state.model_dump_json()


def test_the_same_inputs_give_the_same_trace() -> None:
    first = trace(Team())
    second = trace(Team())

    assert first == second


class Waiters(sf.WorkflowState):
    """Two threads wait on the same flag; main raises it, then blocks."""

    flag: bool = False
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go(
                "first",
                sf.S(
                    sf.WaitFor("first_waits", lambda: self.flag, lambda: self.log.append("h1")),
                    self.note("first_runs"),
                ),
            ),
            sf.Go(
                "second",
                sf.S(
                    sf.WaitFor("second_waits", lambda: self.flag, lambda: self.log.append("h2")),
                    self.note("second_runs"),
                ),
            ),
            sf.Step("raise_flag", self.raise_flag),
            sf.Wait("hold", sf.OnEvent("stop", lambda: None)),
        )

    def note(self, what: str) -> sf.Step:
        return sf.Step(what, lambda: self.log.append(what))

    def raise_flag(self) -> None:
        self.flag = True
        self.log.append("raise_flag")


def test_conditions_are_checked_in_thread_order_and_wake_one_thread_at_a_time() -> None:
    wf = Waiters()
    sf.resume(wf, sf.new_state("wf-1", Waiters), now=NOW)

    assert wf.log == ["raise_flag", "h1", "first_runs", "h2", "second_runs"]


def test_resume_returns_when_nothing_can_move() -> None:
    wf = Waiters()
    state = sf.resume(wf, sf.new_state("wf-1", Waiters), now=NOW)

    assert state.status is sf.WorkflowStatus.WAITING
    assert [(t.id, t.status) for t in state.threads] == [("_main_", sf.ThreadStatus.WAITING_EVENT)]


class Builds(sf.WorkflowState):
    """Counts ``definition()`` calls; three steps and a lazy loop condition."""

    builds: ClassVar[int] = 0
    n: int = 0

    def definition(self) -> sf.Section:
        type(self).builds += 1
        return sf.S(
            sf.For("loop", lambda: self.n < 3, sf.Step("inc", self.inc)),
            sf.If(lambda: self.n == 3, sf.Step("done", lambda: None)),
        )

    def inc(self) -> None:
        self.n += 1


class StaticBuilds(Builds):
    static_definition = True
    builds: ClassVar[int] = 0


def test_a_static_definition_is_built_once_per_resume() -> None:
    StaticBuilds.builds = 0
    wf = StaticBuilds()
    state = sf.resume(wf, sf.new_state("wf-1", StaticBuilds), now=NOW)

    assert state.status is sf.WorkflowStatus.FINISHED
    assert wf.n == 3
    assert StaticBuilds.builds == 1


def test_a_dynamic_definition_is_rebuilt_after_every_action() -> None:
    Builds.builds = 0
    wf = Builds()
    sf.resume(wf, sf.new_state("wf-1", Builds), now=NOW)

    assert Builds.builds >= 5  # before the first move, then after each of the four steps


class Runaway(sf.WorkflowState):
    n: int = 0

    def definition(self) -> sf.Section:
        return sf.S(sf.For("forever", True, sf.Step("inc", self.inc)))

    def inc(self) -> None:
        self.n += 1


def test_max_steps_stops_a_runaway_loop_with_state_as_at_the_last_checkpoint() -> None:
    wf = Runaway()
    state = sf.new_state("wf-1", Runaway)
    saved: list[tuple[str, str]] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        saved.append((wf.model_dump_json(), state.model_dump_json()))

    with pytest.raises(sf.StepLimitExceeded, match="inc"):
        sf.resume(wf, state, checkpoint, max_steps=5, now=NOW)

    assert wf.n == 5
    assert saved[-1] == (wf.model_dump_json(), state.model_dump_json())
    assert state.threads[0].status is sf.ThreadStatus.EXECUTING
    assert state.status is sf.WorkflowStatus.RESUMING


def test_after_the_step_limit_a_later_resume_goes_on() -> None:
    wf = Runaway()
    state = sf.new_state("wf-1", Runaway)
    with pytest.raises(sf.StepLimitExceeded):
        sf.resume(wf, state, max_steps=5, now=NOW)

    with pytest.raises(sf.StepLimitExceeded):
        sf.resume(wf, state, max_steps=5, now=NOW)

    assert wf.n == 10


class HandlerLoop(sf.WorkflowState):
    """A ``WaitFor`` handler counts as an action."""

    n: int = 0

    def definition(self) -> sf.Section:
        return sf.S(sf.For("forever", True, sf.WaitFor("tick", True, self.inc)))

    def inc(self) -> None:
        self.n += 1


def test_waitfor_handlers_count_towards_max_steps() -> None:
    wf = HandlerLoop()

    with pytest.raises(sf.StepLimitExceeded):
        sf.resume(wf, sf.new_state("wf-1", HandlerLoop), max_steps=3, now=NOW)

    assert wf.n == 3


class SpinOnCondition(sf.WorkflowState):
    """A loop around a condition that stays true and has no handler: it never blocks."""

    def definition(self) -> sf.Section:
        return sf.S(sf.For("spin", True, sf.WaitFor("always", True)))


def test_a_loop_of_conditions_that_stay_true_hits_max_steps_instead_of_hanging() -> None:
    state = sf.new_state("wf-1", SpinOnCondition)

    with pytest.raises(sf.StepLimitExceeded, match="always"):
        sf.resume(SpinOnCondition(), state, max_steps=10, now=NOW)

    assert state.threads[0].cur_step == "always"

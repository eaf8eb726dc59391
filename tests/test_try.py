"""`Try(...).Catch(...)` and `current_error()` (DESIGN §7): a step's final failure in the body
moves its thread into the first catch that takes the error.

The semantic tests run twice: in library mode (`resume`, no default policy) and in engine mode
(`Engine` on memory, SQLite and PostgreSQL, whose default retry policy must not apply inside a
``Try``), and must give the same log, data and state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

import stmtflow as sf
from stmtflow.runtime import Engine

NOW_RETRY = sf.RetryPolicy(max_attempts=3, initial_interval=timedelta(0), max_interval=timedelta(0))
"""Retries due at once, so a resume runs every attempt."""


class Declined(Exception):
    """The card was declined."""


class Fraud(Declined):
    """A declined card, for a reason of its own."""


class Flow(sf.WorkflowState):
    """A base for the small workflows below: ``log`` records what ran; ``fail`` plans errors."""

    plan: ClassVar[dict[str, list[Exception]]] = {}
    seen: ClassVar[list[sf.CaughtError | None]] = []
    log: list[str] = []

    def act(self, name: str) -> Callable[[], None]:
        def action() -> None:
            self.log.append(name)
            planned = self.plan.get(name)
            if planned:
                raise planned.pop(0)

        return action

    def note_error(self) -> None:
        self.seen.append(sf.current_error())
        self.log.append("noted")


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    Flow.plan = {}
    Flow.seen = []
    yield
    Flow.plan = {}
    Flow.seen = []


Runner = Callable[[type[Flow]], tuple[Flow, sf.State]]


@pytest.fixture(
    params=["library", "memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runner]:
    """Run a workflow class to where it blocks or ends, in library or engine mode."""
    if request.param == "library":

        def library(cls: type[Flow]) -> tuple[Flow, sf.State]:
            wf = cls()
            return wf, sf.resume(wf, sf.new_state("t-1", cls))

        yield library
        return
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'try.db'}"
    else:
        url = "memory://"
    engines: list[Engine] = []

    def engine_mode(cls: type[Flow]) -> tuple[Flow, sf.State]:
        engine = Engine(url, workflows=[cls])
        engines.append(engine)
        inst = engine.start(cls, id="t-1")
        assert isinstance(inst.data, cls)
        return inst.data, inst.state

    yield engine_mode
    for engine in engines:
        engine.close()


# -- catching ---------------------------------------------------------------------------------


class ByClass(Flow):
    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("before", self.act("before")),
            sf.Try(
                sf.Step("charge", self.act("charge")),
                sf.Step("ship", self.act("ship")),
            ).Catch(Declined, sf.Step("apologise", self.act("apologise"))),
            sf.Step("after", self.act("after")),
        )


def test_a_final_failure_moves_the_thread_into_the_catch_with_data_as_checkpointed(
    run: Runner,
) -> None:
    Flow.plan = {"charge": [Declined("no funds")]}
    wf, state = run(ByClass)
    # "charge" appended itself, then raised: that change is rolled back.
    assert wf.log == ["before", "apologise", "after"]
    assert state.status is sf.WorkflowStatus.FINISHED
    assert state.last_caught == sf.CaughtError(
        type="Declined", message="no funds", step="charge", attempt=1
    )


def test_no_failure_skips_the_catches(run: Runner) -> None:
    wf, state = run(ByClass)
    assert wf.log == ["before", "charge", "ship", "after"]
    assert state.last_caught is None


class ByName(Flow):
    def definition(self) -> sf.Section:
        return sf.S(
            sf.Try(sf.Step("charge", self.act("charge")))
            .Catch("KeyError", sf.Step("keys", self.act("keys")))
            .Catch(("TimeoutError", "Declined"), sf.Step("declined", self.act("declined"))),
        )


def test_names_match_the_class_and_its_bases(run: Runner) -> None:
    Flow.plan = {"charge": [Fraud("stolen card")]}  # Fraud's base is named Declined
    wf, state = run(ByName)
    assert wf.log == ["declined"]
    assert state.last_caught is not None and state.last_caught.type == "Fraud"


class FirstMatch(Flow):
    def definition(self) -> sf.Section:
        return sf.S(
            sf.Try(sf.Step("charge", self.act("charge")))
            .Catch(Fraud, sf.Step("fraud", self.act("fraud")))
            .Catch(Exception, sf.Step("anything", self.act("anything")))
            .Catch(Declined, sf.Step("declined", self.act("declined"))),
        )


@pytest.mark.parametrize(
    ("error", "taken"),
    [(Fraud("x"), "fraud"), (Declined("x"), "anything"), (ValueError("x"), "anything")],
)
def test_the_first_matching_catch_wins(run: Runner, error: Exception, taken: str) -> None:
    Flow.plan = {"charge": [error]}
    wf, _ = run(FirstMatch)
    assert wf.log == [taken]


def test_an_error_no_catch_takes_is_uncaught() -> None:
    Flow.plan = {"charge": [ValueError("boom")]}
    wf = ByClass()
    with pytest.raises(sf.StepError, match="charge"):  # library mode without a policy: as today
        sf.resume(wf, sf.new_state("t-1", ByClass))
    Flow.plan = {"charge": [ValueError("boom")] * 3}
    wf = ByClass()
    state = sf.resume(wf, sf.new_state("t-1", ByClass), default_retry=NOW_RETRY)
    assert state.status is sf.WorkflowStatus.FAILED
    assert "ValueError: boom" in (state.error or "") and "3 attempt(s)" in (state.error or "")
    assert wf.log == ["before"]


def test_the_engine_fails_an_uncaught_error_after_its_default_attempts(tmp_path: Path) -> None:
    Flow.plan = {"charge": [ValueError("boom")] * 3}
    with Engine("memory://", workflows=[ByClass], default_retry=NOW_RETRY) as engine:
        inst = engine.start(ByClass, id="t-1")
    assert inst.status is sf.WorkflowStatus.FAILED
    assert inst.state.threads[0].attempt == 3


# -- retries inside a Try ---------------------------------------------------------------------


class Retried(Flow):
    def definition(self) -> sf.Section:
        policy = sf.RetryPolicy(
            max_attempts=3,
            initial_interval=timedelta(0),
            max_interval=timedelta(0),
            non_retryable=(Fraud,),
        )
        return sf.S(
            sf.Try(sf.Step("charge", self.act("charge"), retry=policy)).Catch(
                Declined, sf.Step("declined", self.note_error)
            ),
        )


def test_with_a_policy_the_catch_takes_the_error_once_attempts_run_out(run: Runner) -> None:
    Flow.plan = {"charge": [Declined("1"), Declined("2"), Declined("3")]}
    wf, _ = run(Retried)
    assert wf.log == ["noted"]
    assert Flow.seen == [sf.CaughtError(type="Declined", message="3", step="charge", attempt=3)]


def test_a_policy_that_recovers_never_reaches_the_catch(run: Runner) -> None:
    Flow.plan = {"charge": [Declined("1"), Declined("2")]}
    wf, _ = run(Retried)
    assert wf.log == ["charge"]


def test_a_non_retryable_error_is_caught_at_its_first_attempt(run: Runner) -> None:
    Flow.plan = {"charge": [Fraud("stolen")]}
    _, _ = run(Retried)
    assert [e.attempt for e in Flow.seen if e] == [1]


def test_a_step_without_a_policy_has_one_attempt_inside_a_try(tmp_path: Path) -> None:
    Flow.plan = {"charge": [Declined("once")]}
    with Engine("memory://", workflows=[ByClass], default_retry=NOW_RETRY) as engine:
        inst = engine.start(ByClass, id="t-1")  # the default policy would retry twice more
    assert inst.data.log == ["before", "apologise", "after"]  # type: ignore[attr-defined]


# -- nesting ----------------------------------------------------------------------------------


class Nested(Flow):
    def definition(self) -> sf.Section:
        inner = sf.Try(sf.Step("charge", self.act("charge"))).Catch(
            Declined, sf.Step("inner", self.note_error), sf.Step("refund", self.act("refund"))
        )
        return sf.S(
            sf.Try(inner, sf.Step("ship", self.act("ship"))).Catch(
                Exception, sf.Step("outer", self.note_error)
            ),
            sf.Step("done", self.act("done")),
        )


def test_nested_trys_catch_innermost_first(run: Runner) -> None:
    Flow.plan = {"charge": [Declined("inner one")]}
    wf, state = run(Nested)
    assert wf.log == ["noted", "refund", "ship", "done"]
    assert [e.message for e in Flow.seen if e] == ["inner one"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_an_error_in_a_catch_body_goes_to_the_try_around_it(run: Runner) -> None:
    Flow.plan = {"charge": [Declined("first")], "refund": [ValueError("refund broke")]}
    wf, _ = run(Nested)
    assert wf.log == ["noted", "noted", "done"]  # inner catch, then the outer one; no ship
    assert [(e.type, e.step) for e in Flow.seen if e] == [
        ("Declined", "charge"),
        ("ValueError", "refund"),
    ]


def test_an_inner_try_that_does_not_match_lets_the_outer_one_catch(run: Runner) -> None:
    Flow.plan = {"charge": [ValueError("not a decline")]}
    wf, _ = run(Nested)
    assert wf.log == ["noted", "done"]
    assert [e.type for e in Flow.seen if e] == ["ValueError"]


# -- Break, Continue and Return inside a Try ---------------------------------------------------


class Looping(Flow):
    rounds: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "rounds",
                lambda: self.rounds < 4,
                sf.Step("count", self.count),
                sf.Try(
                    sf.If(lambda: self.rounds == 1, sf.Continue()),
                    sf.If(lambda: self.rounds == 3, sf.Break()),
                    sf.Step("work", self.act("work")),
                ).Catch(Exception, sf.Step("caught", self.act("caught"))),
            ),
            sf.Try(
                sf.Step("last", self.act("last")),
                sf.Return(),
            ).Catch(Exception, sf.Step("never", self.act("never"))),
            sf.Step("unreached", self.act("unreached")),
        )

    def count(self) -> None:
        self.rounds += 1
        self.log.append(f"round {self.rounds}")


def test_break_continue_and_return_leave_a_try_as_in_python(run: Runner) -> None:
    wf, state = run(Looping)
    assert wf.log == ["round 1", "round 2", "work", "round 3", "last"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_leaving_a_try_leaves_its_frame(tmp_path: Path) -> None:
    frames: list[int] = []
    wf = Looping()
    sf.resume(
        wf,
        state := sf.new_state("t-1", Looping),
        lambda kind: frames.append(len(state.threads[0].frames)) if state.threads else None,
    )
    assert max(frames) == 1  # never more than the one Try it stands in


# -- current_error -----------------------------------------------------------------------------


class Errors(Flow):
    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("outside", self.note_error),
            sf.Try(sf.Step("charge", self.act("charge"))).Catch(
                Declined,
                sf.Try(sf.Step("in_catch", self.note_error)).Catch(
                    Exception, sf.Step("never", self.act("never"))
                ),
                sf.Step("again", self.note_error),
            ),
            sf.Step("after", self.note_error),
        )


def test_current_error_is_the_caught_error_in_the_catch_body_only(run: Runner) -> None:
    Flow.plan = {"charge": [Declined("no funds")]}
    run(Errors)
    caught = sf.CaughtError(type="Declined", message="no funds", step="charge", attempt=1)
    # outside any catch; in a Try nested in the catch (still that catch's); after it
    assert Flow.seen == [None, caught, caught, None]


def test_current_error_outside_a_step_action_is_an_error() -> None:
    with pytest.raises(sf.StmtflowError, match="outside a running step"):
        sf.current_error()


def test_current_error_in_async_actions() -> None:
    import asyncio

    class Async(Flow):
        def definition(self) -> sf.Section:
            return sf.S(
                sf.Try(sf.Step("charge", self.act("charge"))).Catch(
                    Declined, sf.Step("noted", self.anote)
                )
            )

        async def anote(self) -> None:
            self.seen.append(sf.current_error())

    Flow.plan = {"charge": [Declined("async")]}
    asyncio.run(sf.aresume(Async(), sf.new_state("t-1", Async)))
    assert [e.message for e in Flow.seen if e] == ["async"]


# -- threads -----------------------------------------------------------------------------------


class Threads(Flow):
    def definition(self) -> sf.Section:
        return sf.S(
            sf.Try(
                sf.Go("side", sf.S(sf.Step("side_work", self.act("side_work")))),
                sf.WaitFor("joined", lambda: "side_work" in self.log),
            ).Catch(Exception, sf.Step("caught", self.act("caught"))),
        )


def test_a_try_does_not_catch_failures_of_a_thread_it_started(run: Runner) -> None:
    Flow.plan = {"side_work": [ValueError("side broke")] * 3}
    if run.__name__ == "library":
        with pytest.raises(sf.StepError, match="side_work"):
            run(Threads)
        return
    wf, state = run(Threads)
    assert "caught" not in wf.log
    assert state.status is sf.WorkflowStatus.WAITING  # the side thread waits for its retry


class CatchWaits(Flow):
    def definition(self) -> sf.Section:
        return sf.S(
            sf.Try(sf.Step("charge", self.act("charge"))).Catch(
                Declined,
                sf.Wait("new_card", sf.OnEvent("card", self.on_card)),
                sf.Step("charge_again", self.act("charge_again")),
            ),
        )

    def on_card(self, number: str) -> None:
        self.log.append(f"card {number}")


def test_a_catch_body_can_wait_for_an_event() -> None:
    Flow.plan = {"charge": [Declined("expired")]}
    wf, state = CatchWaits(), sf.new_state("t-1", CatchWaits)
    sf.resume(wf, state)
    assert state.status is sf.WorkflowStatus.WAITING
    assert state.threads[0].cur_step == "new_card"
    [frame] = state.threads[0].frames
    assert frame.error is not None and frame.error.message == "expired"
    # the frame survives a save and reload
    state = sf.load_state(state.model_dump_json())
    wf = CatchWaits.model_validate_json(wf.model_dump_json())
    sf.handle_callback("card", wf, state, "4242")
    sf.resume(wf, state)
    assert wf.log == ["card 4242", "charge_again"]
    assert state.status is sf.WorkflowStatus.FINISHED


# -- definitions -------------------------------------------------------------------------------


def test_try_definition_problems_are_listed() -> None:
    with pytest.raises(sf.DefinitionError) as caught:
        sf.validate(
            sf.S(
                sf.Try(sf.Step("a", print)),
                sf.Try(sf.Step("b", print)).Catch(42, sf.Step("c", print)),  # type: ignore[arg-type]
                sf.Try(sf.Step("d", print)).Catch((), sf.Step("e", print)),
                sf.Compensate(),
            )
        )
    issues = caught.value.issues
    assert issues == [
        "Try at S[0]: a Try needs at least one .Catch(errors, *body)",
        "Try at S[1]: Catch #1: errors must be exception classes or error names, got int 42",
        "Try at S[2]: Catch #1 takes no errors (give an exception class, a name or a tuple of "
        "them)",
        "Compensate at S[3]: Compensate must be inside a Catch body of the same thread body",
    ]


def test_compensate_in_a_try_body_or_a_thread_started_in_a_catch_is_refused() -> None:
    problems = sf.S(
        sf.Try(sf.Step("a", print), sf.Compensate()).Catch(
            Exception, sf.Go("later", sf.S(sf.Step("b", print), sf.Compensate()))
        )
    )
    with pytest.raises(sf.DefinitionError) as caught:
        sf.validate(problems)
    assert len(caught.value.issues) == 2
    assert "(a Go body starts a new thread)" in caught.value.issues[1]


def test_try_json_and_diagrams() -> None:
    tree = ByName().definition()
    data = sf.definition_json(tree)
    [stmt] = data["body"]
    assert stmt["type"] == "Try"
    assert [c["errors"] for c in stmt["catches"]] == [["KeyError"], ["TimeoutError", "Declined"]]
    mermaid = sf.to_mermaid(tree)
    assert "catch KeyError" in mermaid and "catch TimeoutError | Declined" in mermaid
    assert "catch KeyError" in sf.to_dot(tree)


def test_a_state_outside_any_try_is_written_as_before() -> None:
    Flow.plan = {}
    wf, state = ByClass(), sf.new_state("t-1", ByClass)
    text: list[str] = []
    sf.resume(wf, state, lambda kind: text.append(state.model_dump_json()))
    assert not any('"frames"' in t for t in text[:1])  # before the Try: no frames key
    assert any('"frames":[{"pc"' in t for t in text)  # inside it
    for key in ("saga", "unwinding", "compensated", "last_caught", "unwind_to"):
        assert f'"{key}"' not in text[-1]


def _unused(*_: Any) -> None:
    """Keeps imports used by type checkers only."""


def test_queries_see_inside_trys_and_catches() -> None:
    tree = Nested().definition()
    names = [getattr(s, "name", None) for s in sf.walk(tree)]
    assert {"charge", "inner", "refund", "ship", "outer", "done"} <= set(names)
    assert sf.find_step("refund", tree) is not None


def test_live_diagram_inside_a_catch() -> None:
    Flow.plan = {"charge": [Declined("expired")]}
    wf, state = CatchWaits(), sf.new_state("t-1", CatchWaits)
    sf.resume(wf, state)
    mermaid = sf.to_mermaid(wf.definition(), state)
    assert "new_card" in mermaid and "catch Declined" in mermaid


def test_error_names_may_be_qualified_and_errors_a_list() -> None:
    from stmtflow.dsl._try import matches

    assert matches((f"{Declined.__module__}.Declined",), Fraud("x"))  # a base, qualified
    assert matches(("builtins.LookupError",), KeyError("k"))
    assert not matches(("builtins.Declined",), Fraud("x"))
    clause = sf.Try(sf.Step("a", print)).Catch([KeyError, "Declined"], sf.Step("b", print))
    assert clause.catches[0].errors == (KeyError, "Declined")

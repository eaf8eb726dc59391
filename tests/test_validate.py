"""Definition validation: every problem is found, named, and reported in one error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stmtflow.analysis._validate import definition_problems, sites, validate
from stmtflow.dsl._handlers import BaseHandler, Timer
from stmtflow.dsl._statements import (
    Break,
    Case,
    Continue,
    Default,
    For,
    Go,
    If,
    On,
    OnEvent,
    RetryPolicy,
    Return,
    S,
    Section,
    Sleep,
    Step,
    Switch,
    Wait,
    WaitFor,
)
from stmtflow.errors import DefinitionError


def act() -> None:
    """A step action that does nothing."""


def on_paid(amount: int) -> int:
    return amount


def bad(value: Any) -> Any:
    """Smuggle a wrongly typed value past the type checker, as a user's typo would."""
    return value


class Approval(BaseHandler):
    def handle(self, req: Any, input: Any) -> Any:
        return input


def order_definition() -> Section:
    """A valid definition using every statement kind."""
    return S(
        Step("reserve", act, retry=RetryPolicy(max_attempts=5)),
        Go("reminders", S(For("remind_loop", True, Sleep("nap", timedelta(hours=1)))), id="r-1"),
        Go("audit", Step("audit_log", act), id=lambda: "audit-1"),
        Wait(
            "payment",
            OnEvent("paid", on_paid, Step("receipt", act)),
            On("approval", Approval()),
            On("timeout", Timer(hours=24), Return()),
        ),
        If(lambda: True, Step("ship", act)).ElseIf(False, Step("hold", act)).Else(),
        Switch(
            Case(True, Step("gift_wrap", act)), Case(lambda: False), Default(Step("plain", act))
        ),
        For(
            "poll",
            lambda: True,
            WaitFor("ready", lambda: True, act),
            If(True, Break()),
            S(If(False, Continue())),
            Switch(Case(True, Go("side", Step("side_step", act)))),
        ),
        WaitFor("settled", True),
        Return(),
    )


def test_a_valid_definition_using_every_statement_passes() -> None:
    assert definition_problems(order_definition()) == []
    validate(order_definition())


def test_every_problem_is_reported_in_one_error() -> None:
    definition = S(Step("", act), Break(), Wait("w"), Step("w", act))
    with pytest.raises(DefinitionError) as caught:
        validate(definition)
    assert caught.value.issues == [
        "Step '' at S[0]: name must be a non-empty string, got ''",
        "Break at S[1]: Break must be inside a For of the same thread body",
        "Wait 'w' at S[2]: a Wait needs at least one event (On or OnEvent)",
        "duplicate name 'w': Wait 'w' at S[2], Step 'w' at S[3] "
        "(statement and event names share one namespace)",
    ]
    assert str(caught.value).startswith("invalid workflow definition (4 problems):\n  - Step ''")


def test_the_definition_must_be_a_section() -> None:
    assert definition_problems(bad([Step("a", act)])) == [
        "the definition must be a Section built with S(...), got a list "
        "(pass statements as separate arguments, or wrap in S())"
    ]


@pytest.mark.parametrize(
    ("value", "got"),
    [
        (act, "function act"),
        ("charge", "str 'charge'"),
        ([Step("a", act)], "a list (pass statements as separate arguments, or wrap in S())"),
        (42, "int 42"),
    ],
)
def test_a_value_that_is_not_a_statement_is_named(value: object, got: str) -> None:
    assert definition_problems(S(Step("a", act), bad(value))) == [
        f"S[1]: expected a statement, got {got}"
    ]


def test_paths_name_where_a_problem_sits() -> None:
    definition = S(
        If(True, bad("x")).ElseIf(True, bad("y")).Else(bad("z")),
        For("poll", True, Step("p", act), bad(1)),
        Go("side", bad(2)),
        Switch(Case(True, bad(3)), Default(bad(4))),
        Wait("pay", On("paid", Timer(seconds=1), bad(5))),
    )
    assert definition_problems(definition) == [
        "S[0].If[0]: expected a statement, got str 'x'",
        "S[0].ElseIf#1[0]: expected a statement, got str 'y'",
        "S[0].Else[0]: expected a statement, got str 'z'",
        "S[1].For('poll')[1]: expected a statement, got int 1",
        "S[2].Go('side')[0]: expected a statement, got int 2",
        "S[3].Case#1[0]: expected a statement, got int 3",
        "S[3].Default[0]: expected a statement, got int 4",
        "S[4].On('paid')[0]: expected a statement, got int 5",
    ]


def test_sites_walk_with_paths_and_context() -> None:
    loop = For("poll", True, Go("side", Step("s", act)), Step("p", act))
    found = {site.path: site for site in sites(S(loop))}
    assert list(found) == [
        "S",
        "S[0]",
        "S[0].For('poll')",
        "S[0].For('poll')[0]",
        "S[0].For('poll')[0].Go('side')",
        "S[0].For('poll')[0].Go('side')[0]",
        "S[0].For('poll')[1]",
    ]
    assert found["S[0].For('poll')[1]"].loop is loop
    inside_go = found["S[0].For('poll')[0].Go('side')[0]"]
    assert inside_go.loop is None
    assert inside_go.thread is not None and inside_go.thread.name == "side"


@pytest.mark.parametrize(
    ("stmt", "issue"),
    [
        (Step("", act), "Step '' at S[0]: name must be a non-empty string, got ''"),
        (Wait("", On("e", Timer())), "Wait '' at S[0]: name must be a non-empty string, got ''"),
        (WaitFor("", True), "WaitFor '' at S[0]: name must be a non-empty string, got ''"),
        (Sleep("", timedelta(1)), "Sleep '' at S[0]: name must be a non-empty string, got ''"),
        (For("", True, Step("a", act)), "For '' at S[0]: name must be a non-empty string, got ''"),
        (Go("", Step("a", act)), "Go '' at S[0]: name must be a non-empty string, got ''"),
        (Step(bad(None), act), "Step at S[0]: name must be a non-empty string, got None"),
        (
            Wait("w", On("", Timer())),
            "On '' at S[0].On(''): event name must be a non-empty string, got ''",
        ),
    ],
)
def test_names_must_be_non_empty_strings(stmt: Any, issue: str) -> None:
    assert definition_problems(S(stmt)) == [issue]


def test_names_are_unique_across_statements_and_events() -> None:
    definition = S(
        Step("a", act),
        Wait("w", On("a", Timer()), On("n.timer", Timer())),
        Go("w", Step("g", act)),
        For("g", True, Sleep("n", timedelta(seconds=1))),
        WaitFor("n", True),
    )
    assert definition_problems(definition) == [
        "duplicate name 'a': Step 'a' at S[0], On 'a' at S[1].On('a') "
        "(statement and event names share one namespace)",
        "duplicate name 'w': Wait 'w' at S[1], Go 'w' at S[2] "
        "(statement and event names share one namespace)",
        "duplicate name 'n.timer': On 'n.timer' at S[1].On('n.timer'), "
        "On 'n.timer' at S[3].For('g')[0] (its timer event) "
        "(statement and event names share one namespace)",
        "duplicate name 'g': Step 'g' at S[2].Go('w')[0], For 'g' at S[3] "
        "(statement and event names share one namespace)",
        "duplicate name 'n': Sleep 'n' at S[3].For('g')[0], WaitFor 'n' at S[4] "
        "(statement and event names share one namespace)",
    ]


def test_break_and_continue_belong_to_a_for_of_the_same_thread() -> None:
    definition = S(
        Continue(),
        For("loop", True, Step("a", act), If(True, Break()), Go("side", Break())),
    )
    assert definition_problems(definition) == [
        "Continue at S[0]: Continue must be inside a For of the same thread body",
        "Break at S[1].For('loop')[2].Go('side')[0]: Break must be inside a For of the same "
        "thread body (a Go body starts a new thread)",
    ]


def test_a_loop_must_reach_a_step_or_wait_on_its_own_thread() -> None:
    definition = S(
        For("spin", True, If(True, Continue())),
        For("spawn", True, Go("worker", Step("work", act))),
        For("outer", True, For("inner", True, WaitFor("tick", True))),
    )
    assert definition_problems(definition) == [
        "For 'spin' at S[0]: its body holds no Step, Wait, Sleep or WaitFor, so an iteration "
        "could never pause",
        "For 'spawn' at S[1]: its body holds no Step, Wait, Sleep or WaitFor, so an iteration "
        "could never pause (a Go body runs on another thread and does not count)",
    ]


def test_actions_conditions_and_handlers_must_be_callable() -> None:
    definition = S(
        Step("missing", bad(None)),
        Step("not_callable", bad("charge_card")),
        Step("takes_args", bad(on_paid)),
        If(bad("yes"), Step("a", act)),
        For("loop", bad(None), Step("b", act)),
        Switch(Case(bad(1), Step("c", act))),
        WaitFor("cond", bad(0)),
        WaitFor("handler", True, bad("done")),
    )
    assert definition_problems(definition) == [
        "Step 'missing' at S[0]: action must be a zero-argument callable, got NoneType None",
        "Step 'not_callable' at S[1]: action must be a zero-argument callable, "
        "got str 'charge_card'",
        "Step 'takes_args' at S[2]: action must take no arguments, but function on_paid "
        "requires some",
        "If at S[3]: condition must be a bool or a zero-argument callable, got str 'yes' "
        "(wrap an eager value in bool(...))",
        "For 'loop' at S[4]: condition must be a bool or a zero-argument callable, "
        "got NoneType None (wrap an eager value in bool(...))",
        "Case at S[5].Case#1: condition must be a bool or a zero-argument callable, got int 1 "
        "(wrap an eager value in bool(...))",
        "WaitFor 'cond' at S[6]: condition must be a bool or a zero-argument callable, "
        "got int 0 (wrap an eager value in bool(...))",
        "WaitFor 'handler' at S[7]: handler must be a zero-argument callable, got str 'done'",
    ]


def test_event_handlers_need_a_callable_handle() -> None:
    definition = S(Wait("w", On("fn", bad(act)), On("none", bad(None)), On("ok", Approval())))
    assert definition_problems(definition) == [
        "On 'fn' at S[0].On('fn'): handler must have a callable handle method, "
        "got function act (use OnEvent(event, fn) for a function)",
        "On 'none' at S[0].On('none'): handler must have a callable handle method, "
        "got NoneType None",
    ]


def test_a_wait_needs_events_and_holds_only_events() -> None:
    definition = S(Wait("empty"), Wait("odd", bad(Step("s", act))), Wait("odder", bad("paid")))
    assert definition_problems(definition) == [
        "Wait 'empty' at S[0]: a Wait needs at least one event (On or OnEvent)",
        "Step 's' at S[1].events[0]: a Wait holds only On events (On or OnEvent)",
        "S[2].events[0]: expected an On event, got str 'paid'",
    ]


def test_cases_and_events_must_sit_in_their_container() -> None:
    definition = S(bad(Case(True, Step("a", act))), bad(Default()), bad(On("e", Timer())))
    assert definition_problems(definition) == [
        "Case at S[0]: Case must be inside a Switch",
        "Default at S[1]: Default must be inside a Switch",
        "On 'e' at S[2]: On must be inside a Wait",
    ]


def test_a_switch_holds_cases_and_one_final_default() -> None:
    definition = S(
        Switch(bad(Step("s", act)), Case(True), bad(3)),
        Switch(Default(), Default()),
        Switch(Default(), Case(True)),
    )
    assert definition_problems(definition) == [
        "Step 's' at S[0].cases[0]: a Switch holds only Case and Default",
        "S[0].cases[2]: expected a Case or Default, got int 3",
        "Switch at S[1]: a Switch takes at most one Default, got 2",
        "Switch at S[2]: a Case after the Default can never run; put the Default last",
    ]


def test_retry_must_be_a_retry_policy() -> None:
    assert definition_problems(S(Step("a", act, retry=bad(3)))) == [
        "Step 'a' at S[0]: retry must be a RetryPolicy or None, got int 3"
    ]


@pytest.mark.parametrize(
    ("go", "issue"),
    [
        (
            Go("g", Step("s", act), id=bad(7)),
            "id must be a string, a zero-argument callable or None, got int 7",
        ),
        (Go("g", Step("s", act), id=""), "id must not be empty (leave it out to use the name)"),
        (
            Go("g", Step("s", act), id=bad(on_paid)),
            "id must take no arguments, but function on_paid requires some",
        ),
        (
            Go("g", Step("s", act), id="_main_"),
            "thread id '_main_' is reserved for the main thread",
        ),
    ],
)
def test_a_go_id_is_a_string_a_callable_or_none(go: Go, issue: str) -> None:
    assert definition_problems(S(go)) == [f"Go 'g' at S[0]: {issue}"]


def test_a_go_named_like_the_main_thread_is_refused() -> None:
    assert definition_problems(S(Go("_main_", Step("s", act)))) == [
        "Go '_main_' at S[0]: thread id '_main_' is reserved for the main thread"
    ]


def test_a_sleep_needs_a_non_negative_timedelta() -> None:
    definition = S(Sleep("a", bad(60)), Sleep("b", timedelta(seconds=-1)))
    assert definition_problems(definition) == [
        "Sleep 'a' at S[0]: duration must be a non-negative timedelta, got int 60",
        "Sleep 'b' at S[1]: duration must be a non-negative timedelta, got timedelta -0:00:01",
    ]


def test_definition_error_is_a_value_error_with_issues() -> None:
    with pytest.raises(ValueError, match="Wait 'w' at S\\[0\\]"):
        validate(S(Wait("w")))

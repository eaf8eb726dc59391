"""Deploy compatibility: stored states against a new definition, and two definitions compared."""

from __future__ import annotations

from datetime import timedelta

import pytest

import stmtflow as sf
from stmtflow.analysis._compat import (
    Incompatibility,
    KindChange,
    Moved,
    Rename,
    check_compatibility,
    compare_definitions,
    format_report,
)
from stmtflow.dsl._statements import Statement
from stmtflow.testing import Snapshot, WorkflowHarness


def noop() -> None:
    """A step action that does nothing."""


def failing() -> None:
    """A step action that always fails (so its thread stays at the step, awaiting a retry)."""
    raise ConnectionError("card network down")


RETRY = sf.RetryPolicy(max_attempts=5, initial_interval=timedelta(minutes=1))


def order(
    *,
    charge: str = "charge",
    payment: Statement | None = None,
    reminders: bool = True,
    timeout: bool = True,
) -> sf.Section:
    """Version 1 of an order workflow, with knobs for the changes a new version might make."""
    events = [sf.OnEvent("paid", noop)]
    if timeout:
        events.append(sf.On("timeout", sf.Timer(hours=24), sf.Return()))
    return sf.S(
        sf.Go(
            "reminders", sf.S(sf.Sleep("remind_later", timedelta(days=1)), sf.Step("remind", noop))
        )
        if reminders
        else sf.Step("no_reminders", noop),
        sf.Step(charge, failing, retry=RETRY),
        payment if payment is not None else sf.Wait("payment", *events),
        sf.Step("ship", noop),
    )


class Order(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return order()


class Paying(sf.WorkflowState):
    """Order without the failing charge: it reaches the payment wait."""

    def definition(self) -> sf.Section:
        return sf.S(*(s for s in order().body if not isinstance(s, sf.Step)))


def charging() -> sf.State:
    """A stored instance whose main thread stands at ``charge`` (awaiting a retry)."""
    return WorkflowHarness(Order, id="o-charging").start().state


def paying() -> sf.State:
    """A stored instance whose main thread waits at ``payment``; ``reminders`` sleeps."""
    return WorkflowHarness(Paying, id="o-paying").start().state


def test_the_same_definition_fits_every_state() -> None:
    states = [charging(), paying()]
    assert [t.cur_step for t in states[1].threads] == ["payment", "remind_later"]
    assert check_compatibility(order(), states) == []


def test_adding_statements_is_safe() -> None:
    new = sf.S(sf.Step("audit", noop), *order().body, sf.Step("thank", noop))
    assert check_compatibility(new, [charging(), paying()]) == []


def test_a_renamed_step_strands_the_threads_standing_on_it() -> None:
    found = check_compatibility(order(charge="capture"), [charging(), paying()])
    assert found == [
        Incompatibility(
            instance="o-charging",
            workflow="Order",
            thread=sf.MAIN_THREAD,
            kind="position",
            name="charge",
            problem="thread '_main_': its position 'charge' no longer exists",
        )
    ]


def test_a_removed_event_is_reported_with_its_thread() -> None:
    found = check_compatibility(order(timeout=False), [("orders/o-paying.json", paying())])
    assert [(i.instance, i.thread, i.kind, i.name, i.source) for i in found] == [
        ("o-paying", sf.MAIN_THREAD, "event", "timeout", "orders/o-paying.json")
    ]
    assert "'timeout'" in found[0].problem
    assert found[0].describe().startswith("o-paying (orders/o-paying.json): thread '_main_'")


def test_a_removed_go_strands_its_threads() -> None:
    found = check_compatibility(order(reminders=False), [paying()])
    assert [(i.thread, i.kind, i.name) for i in found] == [("reminders", "thread", "reminders")]


def test_a_name_that_changed_kind() -> None:
    new = order(payment=sf.Step("payment", noop))
    found = check_compatibility(new, [paying()])
    assert [(i.thread, i.kind, i.name) for i in found] == [(sf.MAIN_THREAD, "position", "payment")]
    assert "is now a Step" in found[0].problem


def test_a_fired_event_that_is_gone() -> None:
    state = paying()
    sf.handle_callback("paid", Paying(), state)  # fired; the thread has not moved on yet
    new = order(payment=sf.Wait("payment", sf.OnEvent("settled", noop)))
    found = check_compatibility(new, [state])
    assert [(i.kind, i.name) for i in found] == [("event", "paid")]
    assert "fired" in found[0].problem


def test_an_event_awaiting_teardown_that_is_gone() -> None:
    state = paying()
    state.teardowns.append(sf.WaitEvent(type="Webhook", req=sf.CallbackRequest(name="hook")))
    found = check_compatibility(order(), [state])
    assert [(i.thread, i.kind, i.name) for i in found] == [(None, "event", "hook")]


def test_a_workflow_instance_gives_its_definition() -> None:
    assert check_compatibility(Order(), [charging()]) == []


def test_bad_input_is_refused() -> None:
    with pytest.raises(sf.DefinitionError):
        check_compatibility(sf.S(sf.Step("a", noop), sf.Step("a", noop)), [])
    with pytest.raises(TypeError, match="State"):
        check_compatibility(order(), ["o-1"])  # type: ignore[list-item]


def test_format_report(snapshot: Snapshot) -> None:
    states = [("saved/o-charging.json", charging()), ("saved/o-paying.json", paying())]
    new = sf.S(sf.Step("capture", failing), sf.Wait("payment", sf.OnEvent("paid", noop)))
    found = check_compatibility(new, states)
    assert len(found) == 4
    snapshot(format_report(found, checked=2), "report")
    assert format_report([], checked=2) == "OK: all 2 instances fit the definition"
    assert format_report([]) == "OK: every instance fit the definition"


# -- compare_definitions ----------------------------------------------------------------------


def test_compare_identical_definitions() -> None:
    diff = compare_definitions(sf.definition_json(order()), sf.definition_json(order()))
    assert not diff.breaking
    assert diff.report() == "no differences in names"


def test_compare_lists_removed_added_changed_moved_and_renamed() -> None:
    old = sf.definition_json(order())
    new = sf.definition_json(
        sf.S(
            sf.Go(
                "reminders",
                sf.S(
                    sf.Sleep("remind_later", timedelta(days=2)),
                    sf.Step("remind", noop),
                    sf.Step("ship", noop),  # moved into the reminders thread
                ),
            ),
            sf.Step("capture", failing),  # renamed from charge
            sf.Wait(
                "payment",
                sf.OnEvent("paid", noop),
                sf.OnEvent("timeout", noop),  # was a Timer
            ),
            sf.WaitFor("settled", lambda: True),
        )
    )
    diff = compare_definitions(old, new)
    assert diff.removed == {"charge": "Step"}
    assert diff.added == {"capture": "Step", "settled": "WaitFor"}
    assert diff.changed_kind == [KindChange("timeout", "On(Timer)", "On(FunctionHandler)")]
    assert diff.moved == [Moved("ship", sf.MAIN_THREAD, "reminders")]
    assert diff.renamed == [Rename("charge", "capture", "Step")]
    assert diff.breaking
    assert diff.report().splitlines() == [
        "removed Step 'charge'",
        "added Step 'capture'",
        "added WaitFor 'settled'",
        "'timeout' changed kind: On(Timer) -> On(FunctionHandler)",
        "'ship' moved from thread '_main_' to 'reminders'",
        "'charge' looks renamed to 'capture' (Step)",
    ]


def test_compare_sees_sleep_events_and_kind_changes() -> None:
    old = sf.definition_json(sf.S(sf.Sleep("nap", timedelta(hours=1))))
    new = sf.definition_json(sf.S(sf.Wait("nap", sf.On("alarm", sf.Timer(hours=1)))))
    diff = compare_definitions(old, new)
    assert diff.changed_kind == [KindChange("nap", "Sleep", "Wait")]
    assert diff.removed == {"nap.timer": "On(Timer)"}
    assert diff.added == {"alarm": "On(Timer)"}

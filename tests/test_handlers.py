"""Handlers: the `Handler` protocol, `BaseHandler`, `FunctionHandler` and `Timer` (DESIGN §2)."""

from __future__ import annotations

import gc
import weakref
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

import stmtflow as sf

NOW = datetime(2024, 1, 1, 12, tzinfo=UTC)


def waiting_on(handler: Any, *, event: str = "e", now: datetime = NOW) -> tuple[Any, sf.State]:
    """A started workflow that waits on ``event`` handled by ``handler``, logging what ran."""

    class OneWait(sf.WorkflowState):
        log: list[str] = []

        def definition(self) -> sf.Section:
            return sf.S(
                sf.Wait("w", sf.On(event, handler)),
                sf.Step("after", lambda: self.log.append("after")),
            )

    wf, state = OneWait(), sf.new_state("h-1", OneWait)
    sf.resume(wf, state, now=now)
    return wf, state


# -- the protocol -------------------------------------------------------------------------------


class OnlyHandle:
    """A handler with nothing but ``handle``."""

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        return {"echo": input, "event": req.name}


def test_a_handler_with_only_handle_works() -> None:
    handler = OnlyHandle()
    assert isinstance(handler, sf.Handler)
    wf, state = waiting_on(handler)
    [event] = state.threads[0].wait_events
    assert (event.type, event.status, event.req.setup_data) == (
        "OnlyHandle",
        sf.WaitEventStatus.SETUP,
        "",
    )
    assert sf.handle_callback("e", wf, state, 5) == {"echo": 5, "event": "e"}
    kinds: list[sf.CheckpointType] = []
    sf.resume(wf, state, kinds.append, now=NOW)
    assert sf.CheckpointType.AFTER_TEARDOWN not in kinds and state.teardowns == []
    assert wf.log == ["after"]
    assert state.status is sf.WorkflowStatus.FINISHED


class Webhook:
    type = "webhook"

    def handle(self, req: sf.CallbackRequest, input: Any) -> None:
        return None


class Named(sf.BaseHandler):
    def handle(self, req: sf.CallbackRequest, input: Any) -> None:
        return None


def test_the_handlers_type_attribute_shows_in_the_wait_event() -> None:
    _, state = waiting_on(Webhook())
    assert state.threads[0].wait_events[0].type == "webhook"


def test_a_base_handler_type_defaults_to_its_class_name() -> None:
    assert Named().type == "Named"
    _, state = waiting_on(Named())
    assert state.threads[0].wait_events[0].type == "Named"


def test_base_handler_setup_and_teardown_are_no_ops() -> None:
    wf, state = waiting_on(Named())
    [event] = state.threads[0].wait_events
    assert (event.status, event.req.setup_data) == (sf.WaitEventStatus.SETUP, "")
    sf.handle_callback("e", wf, state)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.FINISHED and state.teardowns == []


def test_base_handler_without_handle_says_so() -> None:
    class Forgot(sf.BaseHandler):
        pass

    wf, state = waiting_on(Forgot())
    with pytest.raises(sf.HandlerError) as info:
        sf.handle_callback("e", wf, state)
    assert isinstance(info.value.__cause__, NotImplementedError)
    assert "Forgot.handle" in str(info.value)


def test_setup_must_return_a_string() -> None:
    class Bad(sf.BaseHandler):
        def setup(self, req: sf.CallbackRequest) -> Any:
            return 42

        def handle(self, req: sf.CallbackRequest, input: Any) -> None:
            return None

    _, state = waiting_on(Bad())
    [event] = state.threads[0].wait_events
    assert event.status is sf.WaitEventStatus.SETUP_ERROR
    assert event.error is not None and "int" in event.error


# -- FunctionHandler ----------------------------------------------------------------------------


class Payment(BaseModel):
    amount: int
    note: str = ""


class Receipt(BaseModel):
    id: str


def test_schemas_of_model_input_and_output() -> None:
    def pay(payment: Payment) -> Receipt:
        return Receipt(id=str(payment.amount))

    schema_in, schema_out = sf.FunctionHandler(pay).schemas()
    assert schema_in == Payment.model_json_schema()
    assert schema_out == Receipt.model_json_schema()
    assert schema_in["required"] == ["amount"]


def test_schemas_of_plain_types() -> None:
    def count(items: list[int]) -> int:
        return len(items)

    assert sf.FunctionHandler(count).schemas() == (
        {"type": "array", "items": {"type": "integer"}},
        {"type": "integer"},
    )


def test_a_missing_annotation_means_any_json() -> None:
    def anything(value):  # type: ignore[no-untyped-def]
        return value

    assert sf.FunctionHandler(anything).schemas() == ({}, {})
    for value in (None, 1, "x", [1, {"a": None}], {"k": [True]}):
        assert sf.FunctionHandler(anything).handle(sf.CallbackRequest(name="e"), value) == value


def test_the_function_receives_a_parsed_model_instance() -> None:
    got: list[Any] = []

    def pay(payment: Payment) -> str:
        got.append(payment)
        return "ok"

    wf, state = waiting_on(sf.FunctionHandler(pay))
    assert sf.handle_callback("e", wf, state, {"amount": 3}) == "ok"
    assert got == [Payment(amount=3)] and isinstance(got[0], Payment)


def test_a_function_without_parameters_is_called_without_input() -> None:
    called: list[bool] = []
    wf, state = waiting_on(sf.FunctionHandler(lambda: called.append(True) or "done"))
    assert sf.handle_callback("e", wf, state) == "done"
    assert called == [True]


def test_a_bad_plain_input_lists_the_problem() -> None:
    def count(items: list[int]) -> int:
        return len(items)

    wf, state = waiting_on(sf.FunctionHandler(count))
    with pytest.raises(sf.CallbackInputError) as info:
        sf.handle_callback("e", wf, state, [1, "two", 3])
    assert len(info.value.problems) == 1 and "1" in info.value.problems[0]
    assert "'e'" in str(info.value)


def test_on_event_wraps_the_function_in_a_function_handler() -> None:
    def pay(payment: Payment) -> Receipt:
        return Receipt(id="r")

    on = sf.OnEvent("paid", pay)
    assert isinstance(on.handler, sf.FunctionHandler)
    assert on.handler.schemas()[0] == Payment.model_json_schema()


def test_a_function_with_two_parameters_is_refused() -> None:
    def two(a: int, b: int) -> int:
        return a + b

    with pytest.raises(TypeError, match="at most one argument"):
        sf.FunctionHandler(two).schemas()


# -- Timer --------------------------------------------------------------------------------------


def test_timer_setup_records_its_deadline_from_now() -> None:
    _, state = waiting_on(sf.Timer(minutes=90), now=NOW)
    [event] = state.threads[0].wait_events
    assert event.type == "Timer"
    assert event.req.setup_data == "2024-01-01T13:30:00+00:00"
    assert sf.Timer.deadline(event.req) == NOW + timedelta(minutes=90)


def test_timer_durations_add_up() -> None:
    assert sf.Timer(seconds=1, minutes=2, hours=3, days=4).delay == timedelta(
        days=4, hours=3, minutes=2, seconds=1
    )


def test_timer_at_records_that_moment_in_utc() -> None:
    at = datetime(2024, 2, 1, 9, tzinfo=timezone(timedelta(hours=2)))
    _, state = waiting_on(sf.Timer(at=at))
    [event] = state.threads[0].wait_events
    assert event.req.setup_data == "2024-02-01T07:00:00+00:00"
    assert sf.Timer.deadline(event.req) == at


def test_a_timer_fires_when_delivered() -> None:
    wf, state = waiting_on(sf.Timer(hours=1))
    assert sf.handle_callback("e", wf, state) is None
    sf.resume(wf, state, now=NOW + timedelta(hours=1))
    assert wf.log == ["after"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hours": 1, "at": datetime(2024, 1, 1, tzinfo=UTC)}, "not both"),
        ({"minutes": -5}, "negative"),
        ({"at": datetime(2024, 1, 1)}, "aware"),
    ],
)
def test_timer_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sf.Timer(**kwargs)


def test_handler_functions_made_by_definition_do_not_keep_workflows_alive() -> None:
    """A long-running worker handles millions of callbacks; none may leave its workflow behind."""

    class Counter(sf.WorkflowState):
        n: int = 0

        def definition(self) -> sf.Section:
            return sf.S(sf.Wait("w", sf.OnEvent("e", lambda x: setattr(self, "n", x))))

    def one_callback() -> weakref.ref[Counter]:
        wf, state = Counter(), sf.new_state("c-1", Counter)
        sf.resume(wf, state, now=NOW)
        sf.handle_callback("e", wf, state, 3)
        sf.resume(wf, state, now=NOW)
        assert wf.n == 3
        return weakref.ref(wf)

    refs = [one_callback() for _ in range(3)]
    gc.collect()
    assert [r() for r in refs] == [None, None, None]

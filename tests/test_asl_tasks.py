"""Task states: resources (sync, async), Retry with its back-off on the clock, Catch, timeouts,
and tasks waiting for a token sent back through the engine."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import stmtflow as sf
from stmtflow import asl
from stmtflow.testing import WorkflowHarness


def task(**fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": "r", "End": True, **fields}},
    }


class Flaky:
    """A resource failing its first ``failures`` calls; it notes when each call came."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[Any] = []
        self.times: list[float] = []

    def __call__(self, payload: Any) -> Any:
        self.calls.append(payload)
        self.times.append((sf.current_time() - asl._run.START).total_seconds())
        if len(self.calls) <= self.failures:
            raise self.error(f"attempt {len(self.calls)} failed")
        return {"ok": len(self.calls)}


def test_a_task_calls_its_resource_with_the_parameters_and_keeps_the_result() -> None:
    seen = []

    def lookup(payload: Any) -> Any:
        seen.append(payload)
        return {"price": 12, "noise": True}

    machine = task(
        Parameters={"sku.$": "$.item", "fixed": 1},
        ResultSelector={"price.$": "$.price"},
        ResultPath="$.quote",
    )
    result = asl.run(machine, {"item": "A-1"}, resources={"r": lookup})
    assert result.output == {"item": "A-1", "quote": {"price": 12}}
    assert seen == [{"sku": "A-1", "fixed": 1}]


def test_an_async_resource_is_awaited() -> None:
    async def double(payload: Any) -> Any:
        await asyncio.sleep(0)
        return payload["n"] * 2

    assert asl.run(task(), {"n": 21}, resources={"r": double}).output == 42


def test_a_failing_resource_names_the_error_by_exception_class_or_task_error() -> None:
    def boom(payload: Any) -> Any:
        raise KeyError("no such order")

    result = asl.run(task(), {}, resources={"r": boom})
    assert (result.status, result.error) == ("FAILED", "KeyError")

    def refuse(payload: Any) -> Any:
        raise asl.TaskError("Order.Rejected", "over the limit")

    result = asl.run(task(), {}, resources={"r": refuse})
    assert (result.error, result.cause) == ("Order.Rejected", "over the limit")


def test_retry_waits_interval_times_backoff_on_the_fake_clock() -> None:
    flaky = Flaky(3)
    retry = [{"ErrorEquals": ["ConnectionError"], "IntervalSeconds": 2, "BackoffRate": 3}]
    result = asl.run(task(Retry=retry), {}, resources={"r": flaky})
    assert result.output == {"ok": 4}
    assert flaky.times == [0, 2, 2 + 6, 2 + 6 + 18]


def test_max_delay_seconds_caps_the_back_off() -> None:
    flaky = Flaky(3)
    retry = [
        {
            "ErrorEquals": ["States.ALL"],
            "IntervalSeconds": 2,
            "BackoffRate": 3,
            "MaxDelaySeconds": 5,
        }
    ]
    asl.run(task(Retry=retry), {}, resources={"r": flaky})
    assert flaky.times == [0, 2, 7, 12]


def test_max_attempts_bounds_the_retries_then_the_error_ends_the_execution() -> None:
    flaky = Flaky(10)
    retry = [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 1, "MaxAttempts": 2}]
    result = asl.run(task(Retry=retry), {}, resources={"r": flaky})
    assert (result.status, result.error) == ("FAILED", "ConnectionError")
    assert len(flaky.calls) == 3  # the first try and two retries
    zero = Flaky(10)
    asl.run(
        task(Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}]), {}, resources={"r": zero}
    )
    assert len(zero.calls) == 1


def test_the_first_matching_retrier_counts_its_own_attempts() -> None:
    flaky = Flaky(2, error=ValueError)
    retry = [
        {"ErrorEquals": ["ConnectionError"], "MaxAttempts": 5},
        {"ErrorEquals": ["ValueError"], "MaxAttempts": 1},
    ]
    result = asl.run(task(Retry=retry), {}, resources={"r": flaky})
    assert (result.status, result.error) == ("FAILED", "ValueError")
    assert len(flaky.calls) == 2


def test_the_retry_count_is_in_the_context_object() -> None:
    flaky = Flaky(2)
    machine = task(
        Parameters={"retry.$": "$$.State.RetryCount"},
        Retry=[{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1}],
    )
    asl.run(machine, {}, resources={"r": flaky})
    assert flaky.calls == [{"retry": 0}, {"retry": 1}, {"retry": 2}]


def catching(catch: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "r", "Catch": catch, "Next": "Done"},
            "Done": {"Type": "Succeed"},
            "Handled": {"Type": "Pass", "End": True},
        },
    }


def test_catch_puts_error_and_cause_at_its_result_path_and_goes_to_its_next() -> None:
    catch = [{"ErrorEquals": ["ConnectionError"], "ResultPath": "$.err", "Next": "Handled"}]
    result = asl.run(catching(catch), {"id": 1}, resources={"r": Flaky(1)})
    assert result.output == {
        "id": 1,
        "err": {"Error": "ConnectionError", "Cause": "attempt 1 failed"},
    }


def test_catch_without_result_path_replaces_the_input_with_the_error() -> None:
    catch = [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}]
    result = asl.run(catching(catch), {"id": 1}, resources={"r": Flaky(1)})
    assert result.output == {"Error": "ConnectionError", "Cause": "attempt 1 failed"}


def test_an_error_no_catcher_names_is_not_caught() -> None:
    catch = [{"ErrorEquals": ["ValueError"], "Next": "Handled"}]
    result = asl.run(catching(catch), {}, resources={"r": Flaky(1)})
    assert (result.status, result.error) == ("FAILED", "ConnectionError")


def test_retries_run_out_before_a_catcher_takes_the_error() -> None:
    flaky = Flaky(5)
    machine = catching([{"ErrorEquals": ["States.ALL"], "Next": "Handled"}])
    machine["States"]["T"]["Retry"] = [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}]
    result = asl.run(machine, {}, resources={"r": flaky})
    assert result.output["Error"] == "ConnectionError"
    assert len(flaky.calls) == 3


def test_states_runtime_is_neither_retried_nor_caught() -> None:
    machine = catching([{"ErrorEquals": ["States.ALL"], "Next": "Handled"}])
    machine["States"]["T"]["Parameters"] = {"x.$": "$.ghost"}
    machine["States"]["T"]["Retry"] = [{"ErrorEquals": ["States.ALL"]}]
    result = asl.run(machine, {}, resources={"r": Flaky(0)})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_a_result_path_match_failure_can_be_caught() -> None:
    machine = catching([{"ErrorEquals": ["States.ResultPathMatchFailure"], "Next": "Handled"}])
    machine["States"]["T"]["ResultPath"] = "$.a.b"
    result = asl.run(machine, {"a": 1}, resources={"r": Flaky(0)})
    assert result.output["Error"] == "States.ResultPathMatchFailure"


def test_timeout_seconds_fails_a_slow_async_task_with_states_timeout() -> None:
    async def slow(payload: Any) -> Any:
        await asyncio.sleep(30)

    machine = catching([{"ErrorEquals": ["States.TaskFailed"], "Next": "Handled"}])
    machine["States"]["T"]["TimeoutSeconds"] = 1
    result = asl.run(machine, {}, resources={"r": slow})
    # States.TaskFailed matches every error but a timeout.
    assert (result.status, result.error) == ("FAILED", "States.Timeout")


def test_load_refuses_a_task_whose_resource_is_not_given() -> None:
    with pytest.raises(asl.DefinitionError, match="no callable is given for 'r'"):
        asl.load(task(), resources={})


# -- tasks waiting for a token ---------------------------------------------------------------


def token_machine(timeout: int | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"order.$": "$.order", "token.$": "$$.Task.Token"},
        "ResultPath": "$.approval",
        "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.why", "Next": "Refused"}],
        "Next": "Done",
    }
    if timeout:
        state["TimeoutSeconds"] = timeout
    return {
        "StartAt": "Ask",
        "States": {
            "Ask": state,
            "Done": {"Type": "Succeed"},
            "Refused": {"Type": "Fail", "Error": "No"},
        },
    }


class Outbox:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def __call__(self, payload: Any) -> None:
        self.sent.append(payload)


def harness(timeout: int | None = None) -> tuple[WorkflowHarness[Any], Outbox]:
    outbox = Outbox()
    cls = asl.load(
        token_machine(timeout),
        resources={"arn:aws:states:::sqs:sendMessage": outbox},
        name="Approval",
    )
    return WorkflowHarness(cls, data={"input": {"order": 7}}).start(), outbox


def test_a_token_task_calls_its_resource_with_the_token_and_waits_for_it() -> None:
    h, outbox = harness()
    assert h.status.value == "waiting"
    [message] = outbox.sent
    assert message["order"] == 7 and len(message["token"]) == 32
    assert [e.name for e in h.pending()] == ["due", asl.TOKEN_EVENT]
    answer = h.send(asl.TOKEN_EVENT, {"token": message["token"], "output": {"ok": True}})
    assert answer == {"accepted": message["token"]}
    assert h.data.result == {
        "status": "SUCCEEDED",
        "output": {"order": 7, "approval": {"ok": True}},
    }


def test_a_token_sent_back_with_an_error_fails_the_task_and_its_catcher_takes_it() -> None:
    h, outbox = harness()
    token = outbox.sent[0]["token"]
    h.send(asl.TOKEN_EVENT, {"token": token, "error": "Rejected", "cause": "too dear"})
    assert h.data.result == {"status": "FAILED", "error": "No", "cause": None}
    assert h.status.value == "failed"


def test_a_wrong_token_or_reply_is_refused_and_changes_nothing() -> None:
    h, outbox = harness()
    before = h.data.model_dump()
    with pytest.raises(sf.CallbackInputError, match="no Task waits"):
        h.send(asl.TOKEN_EVENT, {"token": "nope", "output": 1})
    with pytest.raises(sf.CallbackInputError, match="exactly one of"):
        h.send(asl.TOKEN_EVENT, {"token": outbox.sent[0]["token"]})
    assert h.data.model_dump() == before
    assert h.status.value == "waiting"


def test_a_token_not_sent_back_in_time_fails_with_states_timeout() -> None:
    h, _ = harness(timeout=60)
    h.advance(timedelta(seconds=59))
    assert h.data.result is None
    h.advance(timedelta(seconds=1))
    assert h.data.result is not None
    assert (h.data.result["status"], h.data.result["error"]) == ("FAILED", "States.Timeout")


def test_run_reports_a_token_nobody_can_send_back() -> None:
    outbox = Outbox()
    resources = {"arn:aws:states:::sqs:sendMessage": outbox}
    result = asl.run(token_machine(), {"order": 1}, resources=resources)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    result = asl.run(token_machine(timeout=5), {"order": 1}, resources=resources)
    assert (result.status, result.error) == ("FAILED", "States.Timeout")


def test_a_resource_changing_its_input_changes_nothing_of_the_state_s() -> None:
    def meddle(payload: Any) -> str:
        payload["order"]["id"] = "changed"
        return "done"

    result = asl.run(task(ResultPath="$.r"), {"order": {"id": 1}}, resources={"r": meddle})
    assert result.output == {"order": {"id": 1}, "r": "done"}

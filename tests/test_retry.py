"""`RetryPolicy`: failed attempts are recorded on the thread and retried once ``now`` reaches
the retry time; when attempts run out the workflow is ``failed`` (DESIGN §2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


class Unavailable(Exception):
    """A transient failure."""


class Invalid(Exception):
    """A failure no retry can fix."""


class Charge(sf.WorkflowState):
    """``charge`` raises the next planned error, if any; the plan lives outside the data."""

    plan: ClassVar[list[Exception]] = []
    attempts: ClassVar[list[sf.StepInfo]] = []
    policy: ClassVar[sf.RetryPolicy] = sf.RetryPolicy(
        max_attempts=3,
        initial_interval=timedelta(seconds=10),
        backoff_coefficient=3.0,
        non_retryable=(Invalid,),
    )
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("charge", self.charge, retry=self.policy),
            sf.Step("ship", lambda: self.log.append("ship")),
        )

    def charge(self) -> None:
        self.attempts.append(sf.current_step())
        self.log.append("charge")
        if self.plan:
            raise self.plan.pop(0)


@pytest.fixture(autouse=True)
def fresh_plan() -> None:
    Charge.plan = []
    Charge.attempts = []


def start(*failures: Exception) -> tuple[Charge, sf.State]:
    Charge.plan = list(failures)
    wf = Charge()
    state = sf.resume(wf, sf.new_state("wf-1", Charge), now=NOW)
    return wf, state


def test_a_failed_attempt_is_recorded_on_the_thread_and_resume_returns_normally() -> None:
    wf, state = start(Unavailable("gateway down"))

    (main,) = state.threads
    assert main.cur_step == "charge"
    assert main.status is sf.ThreadStatus.EXECUTING
    assert main.attempt == 1
    assert main.last_error is not None and "gateway down" in main.last_error
    assert main.retry_at == NOW + timedelta(seconds=10)
    assert state.status is sf.WorkflowStatus.WAITING
    assert wf.log == []  # the failed attempt's changes to the data were rolled back


def test_a_failed_attempt_is_checkpointed() -> None:
    Charge.plan = [Unavailable("gateway down")]
    wf = Charge()
    state = sf.new_state("wf-1", Charge)
    saved: list[tuple[sf.CheckpointType, str]] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        saved.append((kind, state.model_dump_json()))

    sf.resume(wf, state, checkpoint, now=NOW)

    kind, json = saved[-1]
    assert kind is sf.CheckpointType.AFTER_STEP
    assert json == state.model_dump_json()


def test_the_step_does_not_run_before_its_retry_time() -> None:
    wf, state = start(Unavailable("gateway down"))
    before = (wf.model_dump_json(), state.model_dump_json())

    sf.resume(wf, state, now=NOW + timedelta(seconds=10) - SECOND)

    assert len(Charge.attempts) == 1
    assert (wf.model_dump_json(), state.model_dump_json()) == before


def test_the_step_runs_again_once_now_reaches_its_retry_time() -> None:
    wf, state = start(Unavailable("gateway down"))

    sf.resume(wf, state, now=NOW + timedelta(seconds=10))

    assert wf.log == ["charge", "ship"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_attempts_count_up_and_keep_the_same_idempotency_key() -> None:
    wf, state = start(Unavailable("one"), Unavailable("two"))
    sf.resume(wf, state, now=NOW + timedelta(seconds=10))
    sf.resume(wf, state, now=NOW + timedelta(seconds=40))

    assert [info.attempt for info in Charge.attempts] == [1, 2, 3]
    assert len({info.key for info in Charge.attempts}) == 1
    assert state.status is sf.WorkflowStatus.FINISHED


def test_the_wait_grows_by_the_backoff_coefficient() -> None:
    wf, state = start(Unavailable("one"), Unavailable("two"))
    later = NOW + timedelta(seconds=15)

    sf.resume(wf, state, now=later)

    (main,) = state.threads
    assert main.attempt == 2
    assert main.retry_at == later + timedelta(seconds=30)


def test_a_success_clears_the_recorded_failure() -> None:
    wf, state = start(Unavailable("one"))
    saved: list[sf.Thread] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        if kind is sf.CheckpointType.AFTER_STEP:
            saved.append(state.threads[0].model_copy())

    sf.resume(wf, state, checkpoint, now=NOW + timedelta(seconds=10))

    after_charge = saved[0]
    assert (after_charge.attempt, after_charge.retry_at, after_charge.last_error) == (0, None, None)


def test_when_attempts_run_out_the_workflow_fails_naming_step_and_thread() -> None:
    wf, state = start(Unavailable("one"), Unavailable("two"), Unavailable("three"))
    sf.resume(wf, state, now=NOW + timedelta(seconds=10))
    sf.resume(wf, state, now=NOW + timedelta(seconds=40))

    assert len(Charge.attempts) == 3
    assert state.status is sf.WorkflowStatus.FAILED
    assert state.error is not None
    assert "charge" in state.error
    assert "_main_" in state.error
    assert "three" in state.error
    (main,) = state.threads
    assert (main.cur_step, main.attempt, main.retry_at) == ("charge", 3, None)


def test_a_non_retryable_error_fails_the_workflow_at_once() -> None:
    _, state = start(Invalid("no such card"))

    assert len(Charge.attempts) == 1
    assert state.status is sf.WorkflowStatus.FAILED
    assert state.error is not None and "no such card" in state.error


def test_a_failed_workflow_runs_nothing_on_resume() -> None:
    wf, state = start(Invalid("no such card"))
    before = (wf.model_dump_json(), state.model_dump_json())

    sf.resume(wf, state, now=NOW + timedelta(days=1))

    assert len(Charge.attempts) == 1
    assert (wf.model_dump_json(), state.model_dump_json()) == before


def test_restart_makes_a_failed_step_run_again() -> None:
    wf, state = start(Invalid("no such card"))

    sf.restart(state)
    assert state.status is sf.WorkflowStatus.RESUMING
    assert state.error is None
    sf.resume(wf, state, now=NOW)

    assert wf.log == ["charge", "ship"]
    assert state.status is sf.WorkflowStatus.FINISHED
    assert Charge.attempts[0].key == Charge.attempts[1].key


def test_restart_gives_the_step_a_fresh_set_of_attempts() -> None:
    wf, state = start(*(Unavailable(str(i)) for i in range(3)))
    sf.resume(wf, state, now=NOW + timedelta(seconds=10))
    sf.resume(wf, state, now=NOW + timedelta(seconds=40))
    assert state.status is sf.WorkflowStatus.FAILED

    Charge.plan = [Unavailable("again")]
    sf.restart(state)
    sf.resume(wf, state, now=NOW + timedelta(minutes=1))

    assert state.status is sf.WorkflowStatus.WAITING
    assert state.threads[0].attempt == 1


class ChargeThenWait(Charge):
    """`Charge` whose thread waits after the charge instead of ending."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("charge", self.charge, retry=self.policy),
            sf.Wait("confirm", sf.OnEvent("ok", lambda: None)),
        )


def test_a_step_that_succeeds_after_restart_forgets_the_old_failure() -> None:
    wf = ChargeThenWait()
    Charge.plan = [Invalid("no such card")]
    state = sf.resume(wf, sf.new_state("wf-1", ChargeThenWait), now=NOW)
    assert state.status is sf.WorkflowStatus.FAILED

    sf.restart(state)
    sf.resume(wf, state, now=NOW)

    (main,) = state.threads
    assert (main.cur_step, main.status) == ("confirm", sf.ThreadStatus.WAITING_EVENT)
    assert (main.attempt, main.retry_at, main.last_error) == (0, None, None)
    assert state.error is None


def test_restart_refuses_a_workflow_that_did_not_fail() -> None:
    _, state = start(Unavailable("one"))

    with pytest.raises(sf.StmtflowError, match="not failed"):
        sf.restart(state)


class Plain(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("boom", self.boom))

    def boom(self) -> None:
        raise Unavailable("down")


def test_without_a_policy_a_failure_raises_step_error() -> None:
    state = sf.new_state("wf-1", Plain)

    with pytest.raises(sf.StepError):
        sf.resume(Plain(), state, now=NOW)

    assert state.threads[0].attempt == 0
    assert state.status is sf.WorkflowStatus.RESUMING

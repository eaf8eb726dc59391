"""Compensation (DESIGN §7): ``Step(..., compensate=)``, ``Compensate()``, unwinding on an
uncaught final failure and on ``cancel(compensate=True)``, status ``compensating``.

Engine tests run on memory, SQLite and PostgreSQL; the property test (hypothesis) checks that
the compensations that ran are exactly the completions, reversed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_urls import EVERY_STORE, store_url

import stmtflow as sf
from stmtflow.runtime import Engine

NOW = datetime(2024, 1, 1, tzinfo=UTC)
AT_ONCE = sf.RetryPolicy(max_attempts=1)


class Unavailable(Exception):
    """The supplier cannot be reached."""


class Trip(sf.WorkflowState):
    """Flight, hotel and car, each with a compensation; ``plan`` says which calls fail."""

    plan: ClassVar[dict[str, list[Exception]]] = {}
    keys: ClassVar[list[sf.StepInfo]] = []
    policy: ClassVar[sf.RetryPolicy | None] = None
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            self.step("flight"),
            self.step("hotel"),
            self.step("car"),
        )

    def step(self, name: str) -> sf.Step:
        return sf.Step(
            name, self.call(name), compensate=self.call(f"undo {name}"), retry=self.policy
        )

    def call(self, name: str) -> Callable[[], None]:
        def action() -> None:
            self.keys.append(sf.current_step())
            planned = self.plan.get(name)
            if planned:
                raise planned.pop(0)
            self.log.append(name)

        return action


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    Trip.plan, Trip.keys, Trip.policy = {}, [], None
    yield
    Trip.plan, Trip.keys, Trip.policy = {}, [], None


@pytest.fixture(params=EVERY_STORE)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request, tmp_path, request.param, "saga.db")


def engine_for(url: str, *classes: type[sf.WorkflowState], **options: Any) -> Engine:
    return Engine(url, workflows=list(classes), **options)


# -- unwinding on an uncaught final failure -----------------------------------------------------


def test_an_uncaught_final_failure_compensates_in_reverse_completion_order(url: str) -> None:
    Trip.plan = {"car": [Unavailable("no cars")]}
    with engine_for(url, Trip, default_retry=AT_ONCE) as engine:
        inst = engine.start(Trip, id="trip-1")
        assert inst.data.log == ["flight", "hotel", "undo hotel", "undo flight"]  # type: ignore[attr-defined]
        assert inst.status is sf.WorkflowStatus.FAILED
        assert "Unavailable: no cars" in (inst.error or "")
        assert [(c.step, c.error) for c in inst.state.compensated] == [
            ("hotel", None),
            ("flight", None),
        ]
        assert inst.state.saga == [] and inst.state.unwinding == []
        [thread] = inst.state.threads  # kept on the step that failed, for all to see
        assert (thread.cur_step, thread.last_error) == ("car", "Unavailable: no cars")
        assert inst.state.unwind_to is sf.WorkflowStatus.FAILED
        assert inst.wake_at is None


def test_library_mode_unwinds_the_same_way() -> None:
    Trip.plan = {"car": [Unavailable("no cars")]}
    wf, state = Trip(), sf.new_state("trip-1", Trip)
    seen: list[sf.WorkflowStatus] = []
    sf.resume(wf, state, lambda kind: seen.append(state.status), default_retry=AT_ONCE)
    assert wf.log == ["flight", "hotel", "undo hotel", "undo flight"]
    assert state.status is sf.WorkflowStatus.FAILED
    assert sf.WorkflowStatus.COMPENSATING in seen


def test_each_compensation_has_its_own_idempotency_key() -> None:
    Trip.plan = {"car": [Unavailable("no cars")]}
    wf, state = Trip(), sf.new_state("trip-1", Trip)
    sf.resume(wf, state, default_retry=AT_ONCE)
    by_step = {info.step: info for info in Trip.keys}
    assert by_step["hotel.compensate"].key == by_step["hotel"].key.replace(
        "/hotel/", "/hotel.compensate/"
    )
    keys = [info.key for info in Trip.keys]
    assert len(set(keys)) == len(keys)


class Repeated(sf.WorkflowState):
    """A step completed three times in a loop, then a failure: three compensations."""

    log: list[str] = []
    keys: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "nights",
                lambda: self.log.count("book") < 3,
                sf.Step("book", lambda: self.log.append("book"), compensate=self.undo),
            ),
            sf.Step("pay", self.pay, retry=AT_ONCE),
        )

    def undo(self) -> None:
        self.log.append("undo")
        self.keys.append(sf.current_step().key)

    def pay(self) -> None:
        raise Unavailable("bank down")


def test_a_step_completed_n_times_compensates_n_times(url: str) -> None:
    with engine_for(url, Repeated) as engine:
        inst = engine.start(Repeated, id="r-1")
    data = inst.data
    assert isinstance(data, Repeated)
    assert data.log == ["book"] * 3 + ["undo"] * 3
    assert len(set(data.keys)) == 3  # one per completion, latest first
    assert [c.pc for c in inst.state.compensated] == sorted(
        (c.pc for c in inst.state.compensated), reverse=True
    )


def test_a_compensation_is_retried_under_its_steps_policy_and_runs_once(url: str) -> None:
    Trip.policy = sf.RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=30))
    Trip.plan = {
        "car": [Unavailable("1"), Unavailable("2"), Unavailable("3")],
        "undo hotel": [Unavailable("hotel desk closed")],
    }
    with engine_for(url, Trip) as engine:
        inst = engine.start(Trip, id="trip-1")
        for _ in range(2):  # the car's retries
            inst = engine.get("trip-1")
            assert inst.wake_at is not None
            engine.tick(now=inst.wake_at)
        inst = engine.get("trip-1")
        assert inst.status is sf.WorkflowStatus.COMPENSATING
        due, after = inst.state.unwinding
        assert after.step == "flight"
        assert (due.step, due.attempt, due.retry_at) == ("hotel", 1, inst.wake_at)
        assert inst.wake_at is not None
        engine.tick(now=inst.wake_at)
        inst = engine.get("trip-1")
    assert inst.status is sf.WorkflowStatus.FAILED
    assert inst.data.log == ["flight", "hotel", "undo hotel", "undo flight"]  # type: ignore[attr-defined]
    hotel_keys = {i.key for i in Trip.keys if i.step == "hotel.compensate"}
    assert len(hotel_keys) == 1  # the retry kept the key
    assert [i.attempt for i in Trip.keys if i.step == "hotel.compensate"] == [1, 2]


def test_a_compensation_that_fails_for_good_is_recorded_and_the_rest_still_run(
    url: str,
) -> None:
    Trip.plan = {"car": [Unavailable("no cars")], "undo hotel": [Unavailable("hotel says no")]}
    with engine_for(url, Trip, default_retry=AT_ONCE) as engine:
        inst = engine.start(Trip, id="trip-1")
    assert inst.status is sf.WorkflowStatus.FAILED
    assert inst.data.log == ["flight", "hotel", "undo flight"]  # type: ignore[attr-defined]
    hotel, flight = inst.state.compensated
    assert hotel.step == "hotel" and "hotel says no" in (hotel.error or "")
    assert flight.step == "flight" and flight.error is None
    error = inst.error or ""
    assert "no cars" in error and "1 compensation(s) failed" in error and "hotel says no" in error


def test_a_failure_with_nothing_to_compensate_fails_as_before() -> None:
    Trip.plan = {"flight": [Unavailable("no seats")]}
    wf, state = Trip(), sf.new_state("trip-1", Trip)
    sf.resume(wf, state, default_retry=AT_ONCE)
    assert state.status is sf.WorkflowStatus.FAILED
    assert state.threads and state.threads[0].cur_step == "flight"  # kept, restartable
    assert state.compensated == []
    Trip.plan = {}
    sf.restart(state)
    sf.resume(wf, state, default_retry=AT_ONCE)
    assert state.status is sf.WorkflowStatus.FINISHED


def test_restart_refuses_a_workflow_whose_compensations_ran() -> None:
    Trip.plan = {"car": [Unavailable("no cars")]}
    wf, state = Trip(), sf.new_state("trip-1", Trip)
    sf.resume(wf, state, default_retry=AT_ONCE)
    with pytest.raises(sf.StmtflowError, match="compensations ran"):
        sf.restart(state)


def test_a_finished_workflow_keeps_no_saga() -> None:
    wf, state = Trip(), sf.new_state("trip-1", Trip)
    sizes: list[int] = []
    sf.resume(wf, state, lambda kind: sizes.append(len(state.saga)))
    assert max(sizes) == 3 and state.saga == []  # kept until the workflow finished
    assert '"saga"' not in state.model_dump_json()


# -- cancel --------------------------------------------------------------------------------------


class Waiting(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", lambda: self.log.append("reserve"), compensate=self.release),
            sf.Go(
                "side",
                sf.S(sf.Step("hold", lambda: self.log.append("hold"), compensate=self.unhold)),
            ),
            sf.Wait("confirm", sf.OnEvent("confirmed", lambda _: None)),
        )

    def release(self) -> None:
        self.log.append("release")

    def unhold(self) -> None:
        self.log.append("unhold")


def test_cancel_with_compensate_unwinds_every_thread_then_cancels(url: str) -> None:
    with engine_for(url, Waiting) as engine:
        engine.start(Waiting, id="w-1")
        inst = engine.cancel("w-1", compensate=True)
    assert inst.status is sf.WorkflowStatus.CANCELLED
    assert inst.data.log == ["reserve", "hold", "unhold", "release"]  # type: ignore[attr-defined]
    assert inst.error is None


def test_cancel_without_compensate_runs_no_compensation(url: str) -> None:
    with engine_for(url, Waiting) as engine:
        engine.start(Waiting, id="w-1")
        inst = engine.cancel("w-1")
    assert inst.status is sf.WorkflowStatus.CANCELLED
    assert inst.data.log == ["reserve", "hold"]  # type: ignore[attr-defined]


def test_library_cancel_with_compensate() -> None:
    wf, state = Waiting(), sf.new_state("w-1", Waiting)
    sf.resume(wf, state)
    sf.cancel(wf, state, compensate=True)
    assert state.status is sf.WorkflowStatus.CANCELLED
    assert wf.log == ["reserve", "hold", "unhold", "release"]


# -- Compensate() in a catch ----------------------------------------------------------------------


class Booking(sf.WorkflowState):
    """A Try whose catch compensates its own steps only; the earlier step stays."""

    plan: ClassVar[list[str]] = []
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            self.undoable("account"),
            sf.Try(self.undoable("seat"), self.undoable("meal"), sf.Step("pay", self.pay)).Catch(
                "Declined",
                sf.Compensate(),
                sf.Step("notify", lambda: self.log.append(f"notify {sf.current_error()}")),
            ),
            sf.Step("finish", self.finish, retry=AT_ONCE),
        )

    def undoable(self, name: str) -> sf.Step:
        return sf.Step(
            name, lambda: self.log.append(name), compensate=lambda: self.log.append(f"undo {name}")
        )

    def pay(self) -> None:
        if "pay" in self.plan:
            raise type("Declined", (Exception,), {})("card declined")

    def finish(self) -> None:
        if "finish" in self.plan:
            raise Unavailable("finish failed")
        self.log.append("finish")


def test_compensate_undoes_the_trys_steps_then_the_thread_goes_on(url: str) -> None:
    Booking.plan = ["pay"]
    with engine_for(url, Booking) as engine:
        inst = engine.start(Booking, id="b-1")
    log = inst.data.log  # type: ignore[attr-defined]
    assert log[:5] == ["account", "seat", "meal", "undo meal", "undo seat"]
    assert log[5].startswith("notify type='Declined'") and log[6] == "finish"
    assert inst.status is sf.WorkflowStatus.FINISHED


def test_after_compensate_a_later_failure_undoes_only_what_is_left() -> None:
    Booking.plan = ["pay", "finish"]
    wf, state = Booking(), sf.new_state("b-1", Booking)
    sf.resume(wf, state)
    assert wf.log[-1] == "undo account"
    assert wf.log.count("undo seat") == wf.log.count("undo meal") == 1
    assert state.status is sf.WorkflowStatus.FAILED


class CompensateThenWait(sf.WorkflowState):
    """``Compensate()`` followed by a wait: the wait is armed after the compensations ran."""

    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Try(
                sf.Step("hold", lambda: self.log.append("hold"), compensate=self.slow_undo),
                sf.Step("fail", self.fail),
            ).Catch(
                Exception,
                sf.Compensate(),
                sf.Wait("retry_later", sf.On("later", Marker(self.log))),
            ),
        )

    def slow_undo(self) -> None:
        self.log.append("undo hold")

    def fail(self) -> None:
        raise Unavailable("x")


class Marker:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def setup(self, req: sf.CallbackRequest) -> str:
        self.log.append("setup")
        return ""

    def handle(self, req: sf.CallbackRequest, input: Any) -> None:
        return None


def test_a_wait_after_compensate_is_set_up_once_the_compensations_ran() -> None:
    wf, state = CompensateThenWait(), sf.new_state("c-1", CompensateThenWait)
    sf.resume(wf, state)
    assert wf.log == ["hold", "undo hold", "setup"]
    assert state.status is sf.WorkflowStatus.WAITING


def test_async_compensations() -> None:
    import asyncio

    class AsyncTrip(sf.WorkflowState):
        log: list[str] = []

        def definition(self) -> sf.Section:
            return sf.S(
                sf.Step("a", lambda: self.log.append("a"), compensate=self.undo),
                sf.Step("b", self.fail, retry=AT_ONCE),
            )

        async def undo(self) -> None:
            self.log.append("undo a")

        def fail(self) -> None:
            raise Unavailable("b")

    wf = AsyncTrip()
    state = asyncio.run(sf.aresume(wf, sf.new_state("a-1", AsyncTrip)))
    assert wf.log == ["a", "undo a"] and state.status is sf.WorkflowStatus.FAILED


def test_a_compensation_whose_step_left_the_definition_is_recorded_as_failed() -> None:
    Trip.plan = {"car": [Unavailable("1")]}
    Trip.policy = sf.RetryPolicy(max_attempts=2, initial_interval=timedelta(seconds=5))
    wf, state = Trip(), sf.new_state("trip-1", Trip)
    sf.resume(wf, state, now=NOW)  # flight, hotel done; car waits for its retry

    class Trip2(Trip):
        def definition(self) -> sf.Section:  # hotel's compensation removed
            return sf.S(
                self.step("flight"),
                sf.Step("hotel", self.call("hotel")),
                self.step("car"),
            )

    Trip.plan = {"car": [Unavailable("2")]}
    wf2 = Trip2.model_validate(wf.model_dump())
    sf.resume(wf2, state, now=NOW + timedelta(minutes=1))
    hotel, flight = state.compensated
    assert "no compensation in the current definition" in (hotel.error or "")
    assert flight.error is None and wf2.log[-1] == "undo flight"


def test_compensations_show_in_the_state_format_and_load_back() -> None:
    Trip.plan = {"car": [Unavailable("no cars")], "undo hotel": [Unavailable("closed")]}
    wf, state = Trip(), sf.new_state("trip-1", Trip)
    sf.resume(wf, state, default_retry=AT_ONCE)
    text = state.model_dump_json()
    assert sf.load_state(text) == state
    assert '"compensated":[{"step":"hotel","thread":"_main_","pc":' in text


# -- the property: compensations are the completions, reversed ------------------------------------


class Random(sf.WorkflowState):
    """A side thread running ``side`` steps, the main thread running ``steps`` (inside a Try
    whose catch runs ``Compensate()`` when ``catch``), a join, optionally a wait that only a
    cancel ends, and a last step. The action calls numbered in ``fails`` fail for good."""

    calls: ClassVar[int] = 0
    fails: list[int] = []
    steps: list[str] = []
    side: list[str] = []
    catch: bool = False
    wait: bool = False
    done: list[str] = []
    undone: list[str] = []

    def definition(self) -> sf.Section:
        main = [self.step(f"m{i}{name}") for i, name in enumerate(self.steps)]
        body: list[Any] = []
        if self.side:
            side = [self.step(f"s{i}{name}") for i, name in enumerate(self.side)]
            body.append(sf.Go("side", sf.S(*side, sf.Step("side_end", lambda: None))))
        body.append(sf.Try(*main).Catch(Exception, sf.Compensate()) if self.catch else sf.S(*main))
        if self.side:
            body.append(sf.WaitFor("joined", lambda: len(self.side_done()) == len(self.side)))
        if self.wait:
            body.append(sf.Wait("hold", sf.OnEvent("never", lambda _: None)))
        body.append(self.step("end"))
        return sf.S(*body)

    def side_done(self) -> list[str]:
        return [d for d in self.done if d.startswith("s")]

    def step(self, name: str) -> sf.Step:
        return sf.Step(
            name, lambda: self.run(name), compensate=lambda: self.undo(name), retry=AT_ONCE
        )

    def run(self, name: str) -> None:
        type(self).calls += 1  # outside the data: a failed call's rollback keeps the count
        if type(self).calls in self.fails:
            raise Unavailable(name)
        self.done.append(f"{name} {sf.current_step().key}")

    def undo(self, name: str) -> None:
        key = sf.current_step().key.replace(f"/{name}.compensate/", f"/{name}/")
        self.undone.append(f"{name} {key}")


@settings(max_examples=80, deadline=None)
@given(
    steps=st.lists(st.sampled_from("abc"), max_size=6),
    side=st.lists(st.sampled_from("xy"), max_size=3),
    fails=st.lists(st.integers(min_value=1, max_value=12), max_size=2),
    catch=st.booleans(),
    wait=st.booleans(),
)
def test_property_compensations_are_exactly_the_completions_reversed(
    steps: list[str], side: list[str], fails: list[int], catch: bool, wait: bool
) -> None:
    Random.calls = 0
    wf = Random(steps=steps, side=side, fails=fails, catch=catch, wait=wait)
    state = sf.new_state("p-1", Random)
    # Save and reload between resumes, as a store would.
    sf.resume(wf, state)
    wf, state = (
        Random.model_validate_json(wf.model_dump_json()),
        sf.load_state(state.model_dump_json()),
    )
    if state.status is sf.WorkflowStatus.WAITING:
        sf.cancel(wf, state, compensate=True)
    # The model: a caught failure undoes the Try's completions so far, latest first; then an
    # uncaught failure or the cancel undoes every completion not undone yet, latest first.
    expected: list[str] = []
    remaining = list(wf.done)
    if state.last_caught is not None:
        in_try = [d for d in remaining if d.startswith("m")]
        expected += reversed(in_try)
        remaining = [d for d in remaining if d not in in_try]
    if state.status is sf.WorkflowStatus.FINISHED:
        assert state.saga == []
    else:
        assert state.status in (sf.WorkflowStatus.FAILED, sf.WorkflowStatus.CANCELLED)
        expected += reversed(remaining)
    assert wf.undone == expected
    assert len(state.compensated) == len(expected)
    assert all(c.error is None for c in state.compensated)


# -- the testing harness -----------------------------------------------------------------------


def test_the_harness_traces_catches_and_compensations() -> None:
    from stmtflow.testing import WorkflowHarness

    Booking.plan = ["pay", "finish"]
    h = WorkflowHarness(Booking, id="b-1")
    h.start()
    assert h.log == [
        "account",
        "seat",
        "meal",
        "meal.compensate",
        "seat.compensate",
        "notify",
        "account.compensate",
    ]
    failed = [(run.step, run.error) for run in h.trace if run.error]
    assert failed == [("pay", "Declined: card declined"), ("finish", "Unavailable: finish failed")]
    assert h.state.status is sf.WorkflowStatus.FAILED


def test_the_harness_traces_a_compensation_retried_when_due() -> None:
    from stmtflow.testing import WorkflowHarness

    Trip.policy = sf.RetryPolicy(max_attempts=2, initial_interval=timedelta(seconds=30))
    Trip.plan = {"car": [Unavailable("1"), Unavailable("2")], "undo hotel": [Unavailable("x")]}
    h = WorkflowHarness(Trip, id="trip-1")
    h.start()
    h.advance(timedelta(seconds=30))  # the car's second attempt fails: unwinding starts
    assert h.state.status is sf.WorkflowStatus.COMPENSATING
    h.advance(timedelta(seconds=30))  # the hotel's compensation, retried
    assert h.state.status is sf.WorkflowStatus.FAILED
    assert h.log == ["flight", "hotel", "hotel.compensate", "flight.compensate"]
    hotel = [(r.attempt, r.error is None) for r in h.trace if r.step == "hotel.compensate"]
    assert hotel == [(1, False), (2, True)]


def test_check_compatibility_names_a_compensation_the_new_definition_lacks() -> None:
    Trip.plan = {"car": [Unavailable("1")]}
    Trip.policy = sf.RetryPolicy(max_attempts=2, initial_interval=timedelta(seconds=5))
    wf, state = Trip(), sf.new_state("trip-1", Trip)
    sf.resume(wf, state, now=NOW)
    assert sf.check_compatibility(wf.definition(), [state]) == []
    without_hotel_undo = sf.S(wf.step("flight"), sf.Step("hotel", wf.call("hotel")), wf.step("car"))
    [finding] = sf.check_compatibility(without_hotel_undo, [state])
    assert (finding.kind, finding.name, finding.thread) == ("compensation", "hotel", "_main_")
    assert "no compensation for it" in finding.describe()


class Died(BaseException):
    """Stands for the process dying inside a call (not an error the interpreter handles)."""


class DiesUndoing(sf.WorkflowState):
    die: ClassVar[bool] = True
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", lambda: self.log.append("reserve"), compensate=self.release),
            sf.Wait("confirm", sf.OnEvent("ok", lambda _: None)),
        )

    def release(self) -> None:
        if DiesUndoing.die:
            raise Died()
        self.log.append("release")


def test_a_cancel_with_compensate_is_durable_before_its_first_compensation_runs(
    url: str,
) -> None:
    DiesUndoing.die = True
    with engine_for(url, DiesUndoing, lease=timedelta(seconds=1)) as engine:
        engine.start(DiesUndoing, id="d-1")
        with pytest.raises(Died):
            engine.cancel("d-1", compensate=True)
        rec = engine.store.get("d-1")
        assert rec.status == "compensating"  # what a worker finds after the crash
        assert [c.step for c in sf.load_state(rec.state).unwinding] == ["reserve"]
        DiesUndoing.die = False
        assert rec.wake_at is not None  # due: a worker's tick carries the unwinding on
        engine.tick(now=rec.wake_at + timedelta(seconds=2))
        inst = engine.get("d-1")
    assert inst.status is sf.WorkflowStatus.CANCELLED
    assert inst.data.log == ["reserve", "release"]  # type: ignore[attr-defined]


class Crashy(sf.WorkflowState):
    """Steps named by ``steps``, the ones in ``fails`` failing for good; optionally in a Try
    whose catch compensates; everything it did and undid is in its data."""

    steps: list[str] = []
    fails: list[str] = []
    catch: bool = False
    done: list[str] = []
    undone: list[str] = []

    def definition(self) -> sf.Section:
        main = [self.step(f"m{i}{name}") for i, name in enumerate(self.steps)]
        body: Any = sf.Try(*main).Catch(Exception, sf.Compensate()) if self.catch else sf.S(*main)
        return sf.S(body, self.step("end"))

    def step(self, name: str) -> sf.Step:
        return sf.Step(
            name, lambda: self.run(name), compensate=lambda: self.undo(name), retry=AT_ONCE
        )

    def run(self, name: str) -> None:
        if name[2:] in self.fails or (name == "end" and "end" in self.fails):
            raise Unavailable(name)
        self.done.append(sf.current_step().key)

    def undo(self, name: str) -> None:
        self.undone.append(sf.current_step().key)


class Crash(Exception):
    """The checkpoint callback's stand-in for a process dying after a save."""


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.sampled_from("abc"), max_size=5),
    fails=st.lists(st.sampled_from(["a", "b", "c", "end"]), max_size=2),
    catch=st.booleans(),
    crash_at=st.integers(min_value=1, max_value=30),
)
def test_property_a_crash_at_any_checkpoint_changes_nothing_in_the_end(
    steps: list[str], fails: list[str], catch: bool, crash_at: int
) -> None:
    def fresh() -> tuple[Crashy, sf.State]:
        return Crashy(steps=steps, fails=fails, catch=catch), sf.new_state("c-1", Crashy)

    wf, state = fresh()
    sf.resume(wf, state)
    expected = (wf.done, wf.undone, state.status, [c.step for c in state.compensated])

    wf, state = fresh()
    saved = [(wf.model_dump_json(), state.model_dump_json())]

    def checkpoint(kind: sf.CheckpointType) -> None:
        saved.append((wf.model_dump_json(), state.model_dump_json()))
        if len(saved) == crash_at:
            raise Crash()

    try:
        sf.resume(wf, state, checkpoint)
    except Crash:
        data, text = saved[-1]
        wf, state = Crashy.model_validate_json(data), sf.load_state(text)
        sf.resume(wf, state)
    assert (wf.done, wf.undone, state.status, [c.step for c in state.compensated]) == expected
    if state.status is sf.WorkflowStatus.FAILED and not catch:
        assert wf.undone == [_compensation_key(key) for key in reversed(wf.done)]


def _compensation_key(step_key: str) -> str:
    """The key of the compensation of the step execution with ``step_key``."""
    workflow, thread, step, pc = step_key.split("/")
    return f"{workflow}/{thread}/{step}.compensate/{pc}"

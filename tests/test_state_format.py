"""The state JSON format: golden files, round trips, and `load_state` refusing bad documents.

DESIGN §2 (State, Thread, WaitEvent, CallbackRequest; `load_state` raises `StateFormatError`; a
state written by an earlier release must load in a later one). Regenerate the golden files with
``STMTFLOW_UPDATE_SNAPSHOTS=1`` and review them in ``git diff tests/snapshots/states``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from golden import assert_snapshot
from pydantic import ValidationError

import stmtflow as sf
import stmtflow.state
from stmtflow.core._timers import due_timers
from stmtflow.state import StateText, dump_state

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class Hook(sf.BaseHandler):
    def setup(self, req: sf.CallbackRequest) -> str:
        return f"https://hooks.example/{req.workflow_id}/{req.name}"

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        return input


class Flaky(Exception):
    pass


class Order(sf.WorkflowState):
    """A main thread waiting on a webhook or a timer, and a reminder thread retrying a step."""

    log: list[str] = []
    mail_up: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", lambda: self.log.append("reserve")),
            sf.Go(
                "reminders",
                sf.S(sf.Step("remind", self.remind, retry=sf.RetryPolicy(max_attempts=3))),
            ),
            sf.Wait(
                "payment",
                sf.On("paid", Hook(), sf.Step("ship", lambda: self.log.append("ship"))),
                sf.On("timeout", sf.Timer(hours=24)),
            ),
        )

    def remind(self) -> None:
        if not self.mail_up:
            raise Flaky("mail server down")
        self.log.append("remind")


def state_json(state: sf.State) -> str:
    return json.dumps(json.loads(state.model_dump_json()), indent=2) + "\n"


def test_golden_waiting_with_events_and_a_failed_retry() -> None:
    wf, state = Order(), sf.new_state("order-1", Order)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.WAITING
    assert_snapshot(state_json(state), "states/waiting.json")


def test_golden_after_a_callback() -> None:
    wf, state = Order(), sf.new_state("order-1", Order)
    sf.resume(wf, state, now=NOW)
    sf.handle_callback("paid", wf, state, {"amount": 5}, now=NOW)
    assert_snapshot(state_json(state), "states/after_callback.json")


def test_golden_failed_after_its_retries() -> None:
    wf, state = Order(), sf.new_state("order-1", Order)
    later = NOW
    while state.status is not sf.WorkflowStatus.FAILED:
        later += timedelta(hours=1)
        sf.resume(wf, state, now=later)
    assert_snapshot(state_json(state), "states/failed.json")


def test_golden_finished_with_a_teardown_kept() -> None:
    class Stubborn(Hook):
        def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
            raise ConnectionError("hook service unreachable")

    class Done(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(
                sf.Wait("w", sf.On("a", Stubborn()), sf.On("b", Stubborn())),
                sf.Step("end", lambda: None),
            )

    wf, state = Done(), sf.new_state("done-1", Done)
    sf.resume(wf, state, now=NOW)
    sf.handle_callback("a", wf, state, None, now=NOW)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.FINISHED
    assert_snapshot(state_json(state), "states/finished_teardown_error.json")


class Saga(sf.WorkflowState):
    """Two bookings with compensations; the hotel's fails once; the payment fails for good,
    or (``catch``) is caught by a Try whose catch waits for a new card."""

    catch: bool = False
    hotel_desk_open: bool = False

    def definition(self) -> sf.Section:
        retry = sf.RetryPolicy(max_attempts=2, initial_interval=timedelta(minutes=5))
        pay = sf.Step("pay", self.pay, retry=sf.RetryPolicy(max_attempts=1))
        return sf.S(
            sf.Step("flight", lambda: None, compensate=lambda: None),
            sf.Step("hotel", lambda: None, compensate=self.unbook_hotel, retry=retry),
            sf.Try(pay).Catch("Declined", sf.Wait("card", sf.OnEvent("new_card", print)))
            if self.catch
            else pay,
        )

    def pay(self) -> None:
        raise type("Declined", (Exception,), {})("insufficient funds")

    def unbook_hotel(self) -> None:
        if not self.hotel_desk_open:
            raise ConnectionError("hotel desk closed")


def test_golden_compensating_with_a_compensation_waiting_for_its_retry() -> None:
    wf, state = Saga(), sf.new_state("trip-1", Saga)
    sf.resume(wf, state, now=NOW)
    assert state.status is sf.WorkflowStatus.COMPENSATING
    assert_snapshot(state_json(state), "states/compensating.json")
    wf.hotel_desk_open = True
    sf.resume(wf, state, now=NOW + timedelta(minutes=5))
    assert state.status is sf.WorkflowStatus.FAILED
    assert_snapshot(state_json(state), "states/compensated.json")


def test_golden_waiting_in_a_catch_body() -> None:
    wf, state = Saga(catch=True), sf.new_state("trip-1", Saga)
    sf.resume(wf, state, now=NOW)
    assert state.threads[0].frames[0].error is not None
    assert_snapshot(state_json(state), "states/in_catch.json")


# -- round trips --------------------------------------------------------------------------------


def test_load_state_round_trips_at_every_checkpoint() -> None:
    wf, state = Order(), sf.new_state("order-2", Order)
    seen: list[str] = []

    def checkpoint(kind: sf.CheckpointType) -> None:
        text = state.model_dump_json()
        loaded = sf.load_state(text)
        assert loaded == state and loaded.model_dump_json() == text
        seen.append(text)

    sf.resume(wf, state, checkpoint, now=NOW)
    wf.mail_up = True
    sf.handle_callback("paid", wf, state, None, now=NOW)
    sf.resume(wf, state, checkpoint, now=NOW + timedelta(hours=1))
    assert state.status is sf.WorkflowStatus.FINISHED
    assert len(seen) > 8


def test_dump_state_equals_a_full_dump_at_every_checkpoint() -> None:
    # A state of fewer threads than the reuse threshold: `dump_state` dumps it in one go.
    wf, state = Order(), sf.new_state("order-3", Order)
    dumps = 0

    def checkpoint(kind: sf.CheckpointType) -> None:
        nonlocal dumps
        assert dump_state(state) == state.model_dump_json()
        dumps += 1

    sf.resume(wf, state, checkpoint, now=NOW)
    wf.mail_up = True
    sf.handle_callback("paid", wf, state, None, now=NOW)
    assert dump_state(state) == state.model_dump_json()
    sf.resume(wf, state, checkpoint, now=NOW + timedelta(hours=1))
    assert state.status is sf.WorkflowStatus.FINISHED and dumps > 8
    assert dump_state(state) == state.model_dump_json()


class Pings(sf.WorkflowState):
    """``width`` threads, each waiting for its own ``ping`` (a hook with a setup) or its timer."""

    width: int
    started: int = 0
    received: int = 0

    def definition(self) -> sf.Section:
        waiter = sf.S(
            sf.Wait(
                "await_ping",
                sf.On("ping", Hook(), sf.Step("count", self.count)),
                sf.On("late", sf.Timer(hours=1)),
            )
        )
        return sf.S(
            sf.For(
                "spawn",
                lambda: self.started < self.width,
                sf.Go("waiter", waiter, id=lambda: f"t{self.started}"),
                sf.Step("count_started", self.count_started),
            ),
            sf.WaitFor("all_received", lambda: self.received >= self.width),
        )

    def count_started(self) -> None:
        self.started += 1

    def count(self) -> None:
        self.received += 1


REUSE_FROM = stmtflow.state._REUSE_FROM  # the production value: no test changes it


@pytest.mark.parametrize("width", [1, REUSE_FROM - 2, REUSE_FROM - 1, REUSE_FROM, 3 * REUSE_FROM])
def test_dump_state_at_the_production_reuse_threshold(width: int) -> None:
    # Below the threshold a state is dumped in one go; from it on, unchanged threads' JSON is
    # reused (the result keeps its parts: a `StateText`). Either way, at every checkpoint of a
    # run that spawns, sets up, delivers, times out and ends threads, the text is a full dump.
    wf, state = Pings(width=width), sf.new_state("pings", Pings)
    threads_seen: set[int] = set()

    def checkpoint(kind: sf.CheckpointType) -> None:
        text = dump_state(state)
        assert text == state.model_dump_json()
        assert isinstance(text, StateText) is (len(state.threads) >= REUSE_FROM)
        threads_seen.add(len(state.threads))

    sf.resume(wf, state, checkpoint, now=NOW)
    assert len(state.threads) == width + 1
    for i in range(width - 1):  # all threads but the last receive their ping
        sf.handle_callback(sf.CallbackRequest(name="ping", thread_id=f"t{i}"), wf, state, None)
        checkpoint(sf.CheckpointType.AFTER_RESUME)
        sf.resume(wf, state, checkpoint, now=NOW)
    later = NOW + timedelta(hours=2)
    (timeout,) = due_timers(state, later)  # the last thread's timer is due
    sf.handle_callback(timeout, wf, state, None, now=later)
    checkpoint(sf.CheckpointType.AFTER_RESUME)
    sf.resume(wf, state, checkpoint, now=later)
    assert wf.received == width - 1 and state.status is sf.WorkflowStatus.WAITING
    assert len(state.threads) == 1 and max(threads_seen) == width + 1


def waiters(count: int) -> sf.State:
    threads = [
        sf.Thread(
            id=f"t{i}",
            name="waiter",
            status=sf.ThreadStatus.WAITING_EVENT,
            cur_step="await",
            wait_events=[sf.WaitEvent(type="Hook", req=sf.CallbackRequest(name="ping", pc=i))],
            pc=i,
        )
        for i in range(count)
    ]
    return sf.State(id="s", workflow="W", status=sf.WorkflowStatus.WAITING, threads=threads)


def ping_after(event: sf.WaitEvent, **changes: Any) -> sf.WaitEvent:
    return event.model_copy(update=changes)


def _set_status(s: sf.State) -> None:
    s.threads[3].status = sf.ThreadStatus.RESUMING


def _set_retry_at(s: sf.State) -> None:
    s.threads[3].retry_at = NOW


def _replace_an_event(s: sf.State) -> None:
    thread = s.threads[3]
    thread.wait_events = (ping_after(thread.wait_events[0], status=sf.WaitEventStatus.SETUP),)


def _replace_a_request(s: sf.State) -> None:
    thread = s.threads[3]
    event = thread.wait_events[0]
    changed = event.req.model_copy(update={"setup_data": "hook-3"})
    thread.wait_events = (ping_after(event, req=changed),)


def _replace_by_a_list_then_change_it_in_place(s: sf.State) -> None:
    thread = s.threads[3]
    events = [thread.wait_events[0]]
    thread.wait_events = events  # type: ignore[assignment]  # not validated: a list stays one
    assert dump_state(s) == s.model_dump_json()
    events.append(ping_after(events[0], type="Timer"))  # a list is never kept: still seen
    events[0] = ping_after(events[0], handled=True)


def _empty_the_events(s: sf.State) -> None:
    s.threads[3].wait_events = ()


def _append_a_thread(s: sf.State) -> None:
    s.threads.append(s.threads[0].model_copy(update={"id": "new", "pc": 99}))


def _put_a_changed_copy_in_place(s: sf.State) -> None:
    s.threads[3] = s.threads[3].model_copy(update={"cur_step": "elsewhere"})


def _swap_two_threads(s: sf.State) -> None:
    s.threads[3], s.threads[4] = s.threads[4], s.threads[3]


def _remove_a_thread(s: sf.State) -> None:
    del s.threads[3]


def _replace_the_thread_list(s: sf.State) -> None:
    s.threads = s.threads[::-1]


def _append_a_teardown(s: sf.State) -> None:
    s.teardowns.append(ping_after(s.threads[3].wait_events[0], status="pending_teardown"))


def _change_the_state(s: sf.State) -> None:
    s.pc = 1234
    s.status = sf.WorkflowStatus.RESUMING


CHANGES = [
    _set_status,
    _set_retry_at,
    _replace_an_event,
    _replace_a_request,
    _replace_by_a_list_then_change_it_in_place,
    _empty_the_events,
    _append_a_thread,
    _put_a_changed_copy_in_place,
    _swap_two_threads,
    _remove_a_thread,
    _replace_the_thread_list,
    _append_a_teardown,
    _change_the_state,
]


# A list where a tuple belongs (assigned without validation) makes pydantic warn as it dumps.
LIST_WARNING = "ignore:Pydantic serializer warnings:UserWarning"


@pytest.mark.filterwarnings(LIST_WARNING)
@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.__name__.strip("_"))
def test_a_change_through_any_public_path_is_dumped(change: Callable[[sf.State], None]) -> None:
    state = waiters(3 * REUSE_FROM)  # above the production threshold: threads' JSON is reused
    before = dump_state(state)
    assert dump_state(state) == before == state.model_dump_json()
    change(state)
    after = dump_state(state)
    assert after == state.model_dump_json() and after != before
    assert dump_state(state) == after  # and again, now from what this dump kept


def test_events_and_requests_cannot_be_changed_in_place() -> None:
    # What makes a kept thread's JSON trustworthy: its only mutable part is the thread itself.
    state = waiters(REUSE_FROM)
    before = dump_state(state)
    thread = state.threads[0]
    event = thread.wait_events[0]
    with pytest.raises(ValidationError, match="frozen"):
        event.status = sf.WaitEventStatus.SETUP  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        event.req.setup_data = "hook"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        thread.wait_events.append(event)  # type: ignore[attr-defined]
    assert dump_state(state) == before == state.model_dump_json()


def test_a_thread_write_is_pydantics_own() -> None:
    # `Thread.__setattr__` sets fields itself (see there): as pydantic's would, refusing others.
    thread = waiters(1).threads[0]
    assert "retry_at" not in thread.model_fields_set
    thread.retry_at = NOW
    assert thread.retry_at == NOW and "retry_at" in thread.model_fields_set
    assert thread.model_dump()["retry_at"] == NOW
    with pytest.raises(ValueError, match='"Thread" object has no field "colour"'):
        thread.colour = "blue"  # type: ignore[attr-defined]
    assert not hasattr(thread, "colour")


@pytest.mark.filterwarnings(LIST_WARNING)
def test_dump_state_dumps_again_only_the_threads_that_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = waiters(20)
    dumped: list[str] = []
    dump_thread = stmtflow.state._DUMP_THREAD

    def counting(thread: sf.Thread) -> bytes:
        dumped.append(thread.id)
        return dump_thread(thread)

    monkeypatch.setattr(stmtflow.state, "_DUMP_THREAD", counting)

    def dumps_again() -> list[str]:
        dumped.clear()
        assert dump_state(state) == state.model_dump_json()
        return sorted(dumped)

    assert len(dumps_again()) == 20
    assert dumps_again() == []
    _replace_a_request(state)  # t3
    state.threads[4].retry_at = NOW
    state.threads[5].wait_events = ()
    state.threads[6].wait_events = list(state.threads[6].wait_events)  # type: ignore[assignment]
    state.threads.append(state.threads.pop(0).model_copy())  # a copy carries no kept JSON
    del state.threads[1]
    state.status = sf.WorkflowStatus.RESUMING
    assert dumps_again() == ["t0", "t3", "t4", "t5", "t6"]
    assert dumps_again() == ["t6"]  # events in a list: dumped afresh every time


def test_load_state_accepts_bytes_and_a_decoded_dict() -> None:
    state = sf.new_state("s-1", "S")
    text = state.model_dump_json()
    assert sf.load_state(text.encode()) == state
    assert sf.load_state(json.loads(text)) == state


# -- malformed documents ------------------------------------------------------------------------


def good() -> dict[str, Any]:
    wf, state = Order(), sf.new_state("order-3", Order)
    sf.resume(wf, state, now=NOW)
    return json.loads(state.model_dump_json())


def refuse(document: str | dict[str, Any], *words: str) -> None:
    with pytest.raises(sf.StateFormatError) as info:
        sf.load_state(document)
    message = str(info.value)
    for word in words:
        assert word in message, message


def test_text_that_is_not_json() -> None:
    refuse('{"id": "x", "workflow": ', "malformed", "JSON")


def test_a_missing_required_field() -> None:
    doc = good()
    del doc["threads"]
    refuse(doc, "threads", "Field required")


def test_wrong_types() -> None:
    doc = good()
    doc["pc"] = "many"
    doc["threads"][0]["wait_events"][0]["req"]["pc"] = [1]
    refuse(doc, "pc", "threads.0.wait_events.0.req.pc")


def test_an_unknown_status() -> None:
    doc = good()
    doc["status"] = "sleeping"
    refuse(doc, "status", "resuming")


def test_an_unknown_thread_status() -> None:
    doc = good()
    doc["threads"][1]["status"] = "napping"
    refuse(doc, "threads.1.status")


def test_unknown_fields() -> None:
    doc = good()
    doc["threads"][0]["colour"] = "blue"
    refuse(doc, "threads.0.colour", "Extra inputs")
    doc = good()
    doc["extra_top"] = 1
    refuse(doc, "extra_top")


def test_duplicate_thread_ids() -> None:
    doc = good()
    doc["threads"][1]["id"] = sf.MAIN_THREAD
    refuse(doc, "'_main_'", "twice")


def test_a_future_format_version() -> None:
    doc = good()
    doc["format"] = 99
    refuse(doc, "99", "newer")


def test_not_an_object() -> None:
    refuse("[1, 2, 3]")


# -- compatibility pin --------------------------------------------------------------------------

FORMAT_1 = """
{
  "format": 1,
  "id": "order-9",
  "workflow": "Order",
  "status": "waiting",
  "threads": [
    {
      "id": "_main_",
      "name": "_main_",
      "status": "waiting_event",
      "cur_step": "payment",
      "cur_callback": null,
      "wait_events": [
        {
          "type": "Hook",
          "req": {"workflow_id": "order-9", "thread_id": "_main_", "name": "paid", "pc": 4,
                  "setup_data": "https://hooks.example/order-9/paid"},
          "status": "setup",
          "handled": false,
          "error": null
        },
        {
          "type": "Timer",
          "req": {"workflow_id": "order-9", "thread_id": "_main_", "name": "timeout", "pc": 4,
                  "setup_data": "2024-01-02T00:00:00+00:00"},
          "status": "setup_error",
          "handled": false,
          "error": "the setup of event 'timeout' failed: OSError: clock"
        }
      ],
      "pc": 4,
      "step_pc": 1,
      "attempt": 0,
      "retry_at": null,
      "last_error": null
    },
    {
      "id": "reminders",
      "name": "reminders",
      "status": "executing",
      "cur_step": "remind",
      "cur_callback": null,
      "wait_events": [],
      "pc": 7,
      "step_pc": 5,
      "attempt": 1,
      "retry_at": "2024-01-01T00:00:01Z",
      "last_error": "Flaky: mail server down"
    }
  ],
  "pc": 7,
  "teardowns": [],
  "error": null
}
"""

FORMAT_1_MINIMAL = """
{"id": "order-10", "workflow": "Order", "status": "resuming",
 "threads": [{"id": "_main_", "name": "_main_", "status": "resuming"}]}
"""


def test_a_hand_written_format_1_document_loads_and_resumes() -> None:
    state = sf.load_state(FORMAT_1)
    assert state.format == 1
    main, reminders = state.threads
    assert main.wait_events[1].status is sf.WaitEventStatus.SETUP_ERROR
    assert reminders.retry_at == datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)
    wf = Order(log=["reserve"], mail_up=True)
    sf.handle_callback("paid", wf, state, None, now=NOW)
    sf.resume(wf, state, now=NOW + timedelta(hours=1))
    assert wf.log == ["reserve", "ship"]
    assert state.status is sf.WorkflowStatus.FINISHED


def test_a_minimal_format_1_document_loads_with_defaults() -> None:
    state = sf.load_state(FORMAT_1_MINIMAL)
    assert (state.format, state.pc, state.teardowns, state.error) == (1, 0, [], None)
    wf = Order(mail_up=True)
    sf.resume(wf, state, now=NOW)
    assert wf.log == ["reserve", "remind"]

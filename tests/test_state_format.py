"""The state JSON format: golden files, round trips, and `load_state` refusing bad documents.

DESIGN §2 (State, Thread, WaitEvent, CallbackRequest; `load_state` raises `StateFormatError`; a
state written by an earlier release must load in a later one). Regenerate the golden files with
``STMTFLOW_UPDATE_SNAPSHOTS=1`` and review them in ``git diff tests/snapshots/states``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from golden import assert_snapshot

import stmtflow as sf
import stmtflow.state
from stmtflow.state import dump_state

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
    # The engine writes states with `dump_state`, which reuses the JSON of unchanged threads
    # (from one thread on, in tests): retries, setups, callbacks and teardowns all show.
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


def test_dump_state_dumps_again_only_the_threads_that_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waiters = [
        sf.Thread(
            id=f"t{i}",
            name="waiter",
            status=sf.ThreadStatus.WAITING_EVENT,
            cur_step="await",
            wait_events=[sf.WaitEvent(type="Hook", req=sf.CallbackRequest(name="ping", pc=i))],
            pc=i,
        )
        for i in range(20)
    ]
    state = sf.State(id="s", workflow="W", status=sf.WorkflowStatus.WAITING, threads=waiters)
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
    state.threads[3].wait_events[0].req.setup_data = "hook-3"
    state.threads[4].wait_events[0].status = sf.WaitEventStatus.SETUP
    state.threads[5].retry_at = NOW
    state.threads[6].wait_events = []
    state.threads[7].__dict__["pc"] = 99  # the interpreter's hot path, which then says so:
    stmtflow.state.mark_changed(state.threads[7])
    state.threads.append(state.threads.pop(0).model_copy())  # a copy carries no kept JSON
    del state.threads[1]
    state.status = sf.WorkflowStatus.RESUMING
    assert dumps_again() == ["t0", "t3", "t4", "t5", "t6", "t7"]
    assert dumps_again() == []


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

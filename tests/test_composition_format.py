"""The state JSON of composition (thread args, groups, ForEach progress, teardowns of bodies
built from an arg): a golden file, round trips, and the teardown found again after a reload."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from golden import assert_snapshot

import stmtflow as sf
from stmtflow.state import dump_state

NOW = datetime(2024, 1, 1, tzinfo=UTC)
SUPPLIERS = ["acme", "globex"]
FAILS = {"left": 0}


class Portal(sf.BaseHandler):
    """Withdrawing a request fails while ``FAILS["left"]`` is positive."""

    def setup(self, req: sf.CallbackRequest) -> str:
        return f"rfq/{req.thread_id}"

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        return input

    def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        if not handled and FAILS["left"] > 0:
            FAILS["left"] -= 1
            raise ConnectionError("portal unreachable")


class Buy(sf.WorkflowState):
    asked: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "ask",
                lambda: self.asked < len(SUPPLIERS),
                sf.Go(
                    "supplier",
                    self.supplier,
                    id=lambda: SUPPLIERS[self.asked],
                    arg=lambda: {"name": SUPPLIERS[self.asked]},
                    group="suppliers",
                ),
                sf.Step("next", self.next),
            ),
            sf.Join("first", "suppliers", until="any"),
            sf.ForEach("ship", ["a", "b", "c"], self.ship, max_concurrency=2),
        )

    def next(self) -> None:
        self.asked += 1

    def supplier(self, arg: dict[str, str]) -> sf.Section:
        return sf.S(sf.Wait("reply", sf.On("quote", Portal())))

    def ship(self, item: str) -> sf.Section:
        return sf.S(sf.Wait("hold", sf.OnEvent("shipped", lambda: None)))


def state_json(state: sf.State) -> str:
    return json.dumps(json.loads(state.model_dump_json()), indent=2) + "\n"


def deliver(wf: Buy, state: sf.State, event: str, thread: str) -> None:
    req = sf.CallbackRequest(name=event, thread_id=thread)
    sf.handle_callback(req, wf, state, None, now=NOW)
    sf.resume(wf, state, now=NOW)


def test_golden_a_fan_out_under_way_with_a_teardown_kept() -> None:
    FAILS["left"] = 9
    wf, state = Buy(), sf.new_state("buy-1", Buy)
    sf.resume(wf, state, now=NOW)
    deliver(wf, state, "quote", "globex")  # acme's request cannot be withdrawn yet
    deliver(wf, state, "shipped", "ship[0]")  # ship[2] starts
    assert [t.id for t in state.threads] == ["_main_", "ship[1]", "ship[2]"]
    assert state.teardowns[0].body_of == (("supplier", {"name": "acme"}),)
    assert_snapshot(state_json(state), "states/composition.json")
    FAILS["left"] = 0


def test_a_teardown_of_an_ended_body_is_found_again_after_a_reload() -> None:
    FAILS["left"] = 2
    wf, state = Buy(), sf.new_state("buy-2", Buy)
    sf.resume(wf, state, now=NOW)
    deliver(wf, state, "quote", "acme")
    [kept] = state.teardowns
    assert kept.status is sf.WaitEventStatus.TEARDOWN_ERROR
    assert kept.body_of == (("supplier", {"name": "globex"}),)
    for left in (1, 0):  # each later resume, from the stored JSON, tries again
        wf = Buy.model_validate_json(wf.model_dump_json())
        state = sf.load_state(state.model_dump_json())
        sf.resume(wf, state, now=NOW)
        assert len(state.teardowns) == left
    assert FAILS["left"] == 0


def test_dump_state_equals_a_full_dump_with_args_at_every_checkpoint() -> None:
    class Many(sf.WorkflowState):
        def definition(self) -> sf.Section:
            items = [{"n": n, "tags": ["x"] * n} for n in range(12)]
            return sf.S(sf.ForEach("each", items, lambda item: sf.S(sf.Step("s", print))))

    wf, state = Many(), sf.new_state("many-1", Many)
    checked = 0

    def checkpoint(kind: sf.CheckpointType) -> None:
        nonlocal checked
        text = dump_state(state)
        assert text == state.model_dump_json()
        assert sf.load_state(text) == state
        checked += 1

    sf.resume(wf, state, checkpoint, now=NOW)
    assert state.status is sf.WorkflowStatus.FINISHED and checked > 12

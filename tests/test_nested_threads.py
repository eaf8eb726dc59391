"""Threads started inside bodies built from an arg: a ``Go`` and a ``ForEach`` in a ``ForEach``
item's body, each finding its statement in that body again after every reload."""

from __future__ import annotations

from typing import Any

from pydantic import Field

import stmtflow as sf

ORDERS = [{"id": 1, "lines": ["tea", "pot"]}, {"id": 2, "lines": ["cup"]}]
TORN: list[tuple[str, bool]] = []
FAILS = {"left": 0}


class Carrier(sf.BaseHandler):
    """A shipment booked outside; cancelling it fails while ``FAILS["left"]`` is positive."""

    def setup(self, req: sf.CallbackRequest) -> str:
        return f"booking/{req.thread_id}"

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        return input

    def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        if FAILS["left"] > 0:
            FAILS["left"] -= 1
            raise ConnectionError("carrier unreachable")
        TORN.append((req.thread_id, handled))


class Orders(sf.WorkflowState):
    log: list[str] = Field(default_factory=list)

    def definition(self) -> sf.Section:
        return sf.S(
            sf.ForEach("orders", ORDERS, self.order, max_concurrency=2),
            sf.Step("report", lambda: self.log.append("report")),
        )

    def order(self, order: dict[str, Any]) -> sf.Section:
        oid = order["id"]
        return sf.S(
            sf.Go(
                "audit",
                sf.S(sf.Step("check", lambda: self.log.append(f"audit {oid}"))),
                id=f"audit-{oid}",
                group=f"audit-{oid}",
            ),
            sf.ForEach(
                "lines", order["lines"], lambda line: self.line(oid, line), max_concurrency=1
            ),
            sf.Join("audited", f"audit-{oid}"),
            sf.Step("close", lambda: self.log.append(f"close {oid}")),
        )

    def line(self, oid: int, line: str) -> sf.Section:
        return sf.S(
            sf.Wait("ship", sf.On("shipped", Carrier())),
            sf.Step("record", lambda: self.log.append(f"line {oid} {line}")),
        )


def reloaded(wf: Orders, state: sf.State) -> tuple[Orders, sf.State]:
    return Orders.model_validate_json(wf.model_dump_json()), sf.load_state(state.model_dump_json())


def test_nested_threads_run_from_their_own_bodies_across_reloads() -> None:
    wf, state = Orders(), sf.new_state("o-1", Orders)
    sf.resume(wf, state)
    ids = {t.id: t for t in state.threads}
    assert set(ids) == {
        "_main_",
        "orders[0]",
        "orders[1]",
        "orders[0]/lines[0]",
        "orders[1]/lines[0]",
    }
    assert ids["orders[0]/lines[0]"].within == (("orders", ORDERS[0]),)
    assert ids["orders[0]/lines[0]"].group == "orders[0]/lines"
    text = state.model_dump_json()
    assert '"within":[["orders",{"id":1,"lines":["tea","pot"]}]]' in text
    while state.status is not sf.WorkflowStatus.FINISHED:
        wf, state = reloaded(wf, state)
        waiting = [t.id for t in state.threads if t.cur_step == "ship"]
        req = sf.CallbackRequest(name="shipped", thread_id=waiting[-1])
        sf.handle_callback(req, wf, state, None)
        wf, state = reloaded(wf, state)
        sf.resume(wf, state)
    assert sorted(wf.log[:-1]) == sorted(
        ["audit 1", "audit 2", "line 1 tea", "line 1 pot", "line 2 cup", "close 1", "close 2"]
    )
    assert wf.log.index("line 1 tea") < wf.log.index("line 1 pot") < wf.log.index("close 1")
    assert wf.log[-1] == "report" and state.groups == {} and state.teardowns == []
    assert sorted(TORN) == [
        ("orders[0]/lines[0]", True),
        ("orders[0]/lines[1]", True),
        ("orders[1]/lines[0]", True),
    ]
    TORN.clear()


def test_a_cancel_tears_down_nested_events_found_again_from_the_stored_json() -> None:
    FAILS["left"] = 1
    wf, state = Orders(), sf.new_state("o-2", Orders)
    sf.resume(wf, state)
    sf.cancel(wf, state)
    assert state.status is sf.WorkflowStatus.CANCELLED
    [kept] = state.teardowns  # the first teardown failed and is kept; the other ran
    assert kept.body_of is not None and kept.body_of[-1][0] == "lines"
    wf, state = reloaded(wf, state)
    sf.resume(wf, state)
    assert state.teardowns == []
    assert sorted(TORN) == [("orders[0]/lines[0]", False), ("orders[1]/lines[0]", False)]
    TORN.clear()


def test_a_nested_position_that_is_gone_is_a_mismatch() -> None:
    wf, state = Orders(), sf.new_state("o-3", Orders)
    sf.resume(wf, state)

    class Renamed(Orders):
        def line(self, oid: int, line: str) -> sf.Section:
            return sf.S(sf.Wait("dispatch", sf.On("shipped", Carrier())))

    found = sf.check_compatibility(Renamed(), [state])
    assert {f.thread for f in found} == {"orders[0]/lines[0]", "orders[1]/lines[0]"}
    assert all("'ship' no longer exists" in f.problem for f in found)
    wf2 = Renamed.model_validate_json(wf.model_dump_json())
    try:
        sf.resume(wf2, state)
    except sf.DefinitionMismatch as exc:
        assert "thread 'orders[0]/lines[0]'" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected a DefinitionMismatch")

"""The Redis and NATS stores keep no inboxes yet: what needs one is refused, nothing written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import stmtflow as sf
from stmtflow.errors import StmtflowError


class Pay(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("charge", lambda: None))


class Order(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Call("pay", Pay))


class Waiter(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(
            sf.Wait("first", sf.OnEvent("a", lambda _: None)),
            sf.Wait("second", sf.OnEvent("b", lambda _: None)),
        )


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
    ]
)
def engine(request: pytest.FixtureRequest) -> Iterator[sf.Engine]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    with sf.Engine(url, workflows=[Order, Pay, Waiter]) as eng:
        yield eng


def test_a_call_is_refused_and_no_child_is_stored(engine: sf.Engine) -> None:
    with pytest.raises(StmtflowError, match="keeps no inboxes yet"):
        engine.start(Order, Order(), id="o1")
    assert [r.id for r in engine.store.list() if r.workflow == "Pay"] == []


def test_a_buffered_send_is_refused_and_the_instance_unchanged(engine: sf.Engine) -> None:
    engine.start(Waiter, Waiter(), id="w1")
    before = engine.store.get("w1")
    with pytest.raises(StmtflowError, match="buffered send of 'b'"):
        engine.send("w1", "b", None, buffer=True)
    after = engine.store.get("w1")
    assert (after.version, after.state) == (before.version, before.state)

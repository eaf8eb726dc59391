"""The NATS store's batches are intents (docs/stores.md, "Inboxes on NATS"): committed in the
writer's own record with its checkpoint, applied to the other records after, then cleared. A
writer that dies in between loses nothing and duplicates nothing: the record is due, and its
next claim or write finishes the intent, which applied twice has the effect of once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

import stmtflow as sf
from stmtflow.errors import NotFound
from stmtflow.runtime import Engine
from stmtflow.stores import Batch, Message, Record, open_store
from stmtflow.stores._nats_inbox import finish
from stmtflow.stores.base import utcnow
from stmtflow.stores.nats import NatsStore

pytestmark = pytest.mark.nats

LEASE = timedelta(seconds=30)


def rec(id: str, **changes: Any) -> Record:
    base = Record(id=id, workflow="W", data="{}", state="{}", status="waiting")
    return dataclasses.replace(base, **changes)


@pytest.fixture
def store(nats_url: str) -> Iterator[Any]:
    with open_store(nats_url) as opened:
        yield opened


@contextmanager
def dying(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Within: every writer dies right after the write that commits its intent (nothing of
    the intent is applied)."""

    async def died(self: NatsStore, c: Any, written: Any) -> None:
        return None

    with monkeypatch.context() as patch:
        patch.setattr(NatsStore, "_finish", died)
        yield


def _left_over(store: Any, monkeypatch: pytest.MonkeyPatch) -> Record:
    """A parent whose write carried a child and a message for ``other``, applied not at all."""
    parent = store.create(rec("p"))
    store.create(rec("other"))
    child = rec("p/c@1", status="resuming", parent_id="p", root_id="p", on_parent_end="cancel")
    batch = Batch(create=(child,), post=(Message(to="other", event="hi", input="1"),))
    with dying(monkeypatch):
        return store.update(parent, expected_version=1, batch=batch)  # type: ignore[no-any-return]


def test_an_intent_left_by_a_dead_writer_is_finished_by_a_claim(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _left_over(store, monkeypatch)
    with pytest.raises(NotFound):
        store.get("p/c@1")
    assert store.inbox("other") == [] and store.list(parent_id="p") == []
    assert store._run("read", lambda c: c.read("p")).mail.intent is not None
    # The parent waits on nothing, yet its intent makes it due: a tick finds it and finishes
    # the intent (then, with nothing left to do, does not claim it); the message makes
    # ``other`` due, and the child (resuming) is due too.
    claimed = store.claim_due(utcnow(), "w", LEASE)
    assert store._run("read", lambda c: c.read("p")).mail.intent is None
    assert "p" not in [r.id for r in claimed] and store.get("p").lease_owner is None
    assert {r.id for r in store.claim_due(utcnow(), "w2", LEASE)} == {"other", "p/c@1"}
    assert store.get("p/c@1").parent_id == "p"
    assert [m.event for m in store.inbox("other")] == ["hi"]
    assert [r.id for r in store.list(parent_id="p")] == ["p/c@1"]


def test_an_intent_is_finished_before_the_next_write_of_its_record(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = _left_over(store, monkeypatch)
    store.update(dataclasses.replace(parent, data='{"n": 2}'), expected_version=parent.version)
    assert store.get("p/c@1").root_id == "p"
    assert [m.input for m in store.inbox("other")] == ["1"]
    assert store.get("p").data == '{"n": 2}'


def test_an_intent_applied_twice_creates_once_and_posts_once(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _left_over(store, monkeypatch)

    async def twice(c: Any) -> None:
        stored = await c.read("p")
        assert stored.mail.intent is not None
        await finish(c, stored)
        await finish(c, stored)  # a second finisher with the same copy (a slow first writer)

    store._run("finish twice", twice)
    assert [m.event for m in store.inbox("other")] == ["hi"]
    assert store.get("p/c@1").version == 1
    assert store._run("read", lambda c: c.read("p")).mail.intent is None


def test_a_later_intent_of_the_same_sender_is_not_taken_for_a_repeat(store: Any) -> None:
    parent = store.create(rec("p"))
    store.create(rec("other"))
    for n in range(3):
        batch = Batch(post=(Message(to="other", event="e", input=str(n)),))
        parent = store.update(parent, expected_version=parent.version, batch=batch)
    assert [m.input for m in store.inbox("other")] == ["0", "1", "2"]


class Pay(sf.WorkflowState):
    charged: bool = False

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("charge", self.charge))

    def charge(self) -> None:
        self.charged = True

    def result(self) -> str:
        return "paid"


class Order(sf.WorkflowState):
    got: str = ""

    def definition(self) -> sf.Section:
        return sf.S(sf.Call("pay", Pay, result=self.paid))

    def paid(self, outcome: sf.ChildResult) -> None:
        self.got = f"{outcome.status}:{outcome.output}"


def test_a_call_armed_by_a_writer_that_died_is_started_once_and_ends_the_parent(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dying(monkeypatch), Engine(nats_url, workflows=[Order, Pay]) as engine:
        engine.start(Order, id="o")
        assert engine.children("o") == []  # armed and committed, the child not yet made
    with Engine(nats_url, workflows=[Order, Pay]) as engine:
        for _ in range(5):
            if engine.get("o").status is sf.WorkflowStatus.FINISHED:
                break
            engine.tick(utcnow() + timedelta(minutes=2))
        order = engine.get("o")
        assert order.status is sf.WorkflowStatus.FINISHED
        assert order.data.got == "finished:paid"  # type: ignore[attr-defined]
        [child] = engine.children("o")
        assert child.data.charged and child.version <= 4  # type: ignore[attr-defined]
        assert engine.store.inbox("o") == []


def test_an_intent_another_process_finished_is_not_applied_again_from_a_stale_copy(
    store: Any, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = _left_over(store, monkeypatch)  # ``store`` remembers the parent with its intent
    with open_store(nats_url) as other_process:
        other_process.claim_due(utcnow(), "w", LEASE)  # finishes the intent
        [message] = other_process.inbox("other")
        target = other_process.get("other")
        other_process.update(
            target, expected_version=target.version, batch=Batch(take=(message.seq,))
        )
    store.update(dataclasses.replace(parent, data='{"n": 3}'), expected_version=parent.version)
    assert store.inbox("other") == []  # taken once, not delivered again
    assert store.get("p").data == '{"n": 3}'

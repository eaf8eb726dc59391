"""The store contract for composition, on every store: a `Batch` applied with a write or not at
all, inboxes in arrival order, messages making an instance due, keys, children by parent."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from store_urls import EVERY_STORE, store_url

from stmtflow.errors import ConflictError, NotFound
from stmtflow.stores import Batch, Message, Record, Store, open_store
from stmtflow.stores.base import utcnow


@pytest.fixture(params=EVERY_STORE)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = store_url(request, tmp_path, request.param, "inbox.db")
    with open_store(url) as opened:
        yield opened


def rec(id: str, **fields: object) -> Record:
    return Record(id=id, workflow="W", data="{}", state="{}", status="waiting", **fields)  # type: ignore[arg-type]


def test_a_batch_is_applied_with_its_write(store: Store) -> None:
    parent = store.create(rec("p"))
    store.create(rec("other"))
    child = rec(
        "p/c@1", parent_id="p", root_id="p", parent_event='{"name":"c"}', on_parent_end="cancel"
    )
    batch = Batch(create=(child,), post=(Message(to="other", event="hi", input="1"),))
    store.update(parent, expected_version=1, batch=batch)
    stored = store.get("p/c@1")
    assert (stored.parent_id, stored.root_id, stored.on_parent_end) == ("p", "p", "cancel")
    assert stored.parent_event == '{"name":"c"}'
    assert store.get("p").root_id == "p"  # a root is its own root
    [message] = store.inbox("other")
    assert (message.event, message.input, message.status) == ("hi", "1", "new")
    assert store.get("other").inbox
    assert [r.id for r in store.list(parent_id="p")] == ["p/c@1"]


def test_a_refused_write_applies_nothing_of_its_batch(store: Store) -> None:
    parent = store.create(rec("p"))
    store.update(parent, expected_version=1)
    batch = Batch(create=(rec("p/c@1", parent_id="p"),), post=(Message(to="p", event="x"),))
    with pytest.raises(ConflictError):
        store.update(parent, expected_version=1, batch=batch)
    with pytest.raises(NotFound):
        store.get("p/c@1")
    assert store.inbox("p") == []


def test_a_child_created_twice_is_left_as_it_was(store: Store) -> None:
    parent = store.create(rec("p"))
    first = rec("p/c@1", parent_id="p")
    parent = store.update(parent, expected_version=1, batch=Batch(create=(first,)))
    again = dataclasses.replace(first, data='{"second": true}')
    store.update(parent, expected_version=parent.version, batch=Batch(create=(again,)))
    assert store.get("p/c@1").data == "{}"


def test_messages_arrive_in_order_and_are_taken_or_kept(store: Store) -> None:
    target = store.create(rec("t"))
    for n in range(3):
        assert store.post(Message(to="t", event="e", input=str(n), buffered=True))
    first, second, third = store.inbox("t")
    assert [m.input for m in (first, second, third)] == ["0", "1", "2"]
    assert first.seq < second.seq < third.seq
    now = utcnow()
    assert [r.id for r in store.claim_due(now, "w", timedelta(seconds=5))] == ["t"]
    store.release("t", "w", store.get("t").fence)
    store.update(
        store.get("t"),
        expected_version=target.version,
        batch=Batch(take=(first.seq,), keep=(second.seq, third.seq)),
    )
    assert [(m.input, m.status) for m in store.inbox("t")] == [("1", "kept"), ("2", "kept")]
    assert store.claim_due(utcnow(), "w", timedelta(seconds=5)) == []  # kept: not due
    assert store.get("t").inbox


def test_a_message_for_a_missing_instance_is_dropped(store: Store) -> None:
    parent = store.create(rec("p"))
    store.update(parent, expected_version=1, batch=Batch(post=(Message(to="gone", event="e"),)))
    assert store.inbox("gone") == []
    with pytest.raises(NotFound):
        store.post(Message(to="gone", event="e"))


def test_keys_deduplicate_and_stay_known(store: Store) -> None:
    target = store.create(rec("t"))
    assert store.post(Message(to="t", event="e", key="k1"))
    assert not store.post(Message(to="t", event="e", key="k1"))
    [message] = store.inbox("t")
    target = store.update(target, expected_version=1, batch=Batch(take=(message.seq,)))
    assert store.inbox("t") == [] and store.known_key("t", "k1")
    assert not store.post(Message(to="t", event="e", key="k1"))
    store.update(target, expected_version=target.version, batch=Batch(keys=("k2",)))
    assert store.known_key("t", "k2") and not store.known_key("t", "k3")
    assert store.inbox("t") == []
    assert not store.get("t").inbox


def test_claim_due_takes_both_kinds_within_its_limit(store: Store) -> None:
    now = utcnow()
    for n in range(3):
        store.create(rec(f"due-{n}", wake_at=now - timedelta(seconds=1)))
        store.create(rec(f"posted-{n}"))
        store.post(Message(to=f"posted-{n}", event="e"))
    store.create(rec("idle"))
    first = store.claim_due(now, "w", timedelta(seconds=5), limit=4)
    second = store.claim_due(now, "w2", timedelta(seconds=5), limit=4)
    claimed = [r.id for r in first + second]
    assert len(first) == 4 and len(set(claimed)) == 6
    assert set(claimed) == {f"{kind}-{n}" for kind in ("due", "posted") for n in range(3)}

"""The NATS store's lock queues (docs/stores.md, "Locks on NATS"): an instance's rows commit in
its record, each key's queue is settled after by compare-and-set as part of the write's
intent. A writer that dies before settling leaves the release to whoever finishes its intent;
a grant not yet told is told by the next settle; an applier that stalled past its intent
never puts back rows a later write took away."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from stmtflow.stores import Batch, Record, open_store
from stmtflow.stores import _nats_inbox as inbox
from stmtflow.stores._locks import LockClaim
from stmtflow.stores._nats_locks import _Queue, settle
from stmtflow.stores.base import utcnow
from stmtflow.stores.nats import NatsStore

pytestmark = pytest.mark.nats

LEASE = timedelta(seconds=30)


@contextmanager
def dying(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Within: every writer dies right after the write that commits its intent."""

    async def died(self: NatsStore, c: Any, written: Any) -> None:
        return None

    with monkeypatch.context() as patch:
        patch.setattr(NatsStore, "_finish", died)
        yield


def rec(id: str) -> Record:
    return Record(id=id, workflow="W", data="{}", state="{}", status="waiting")


@pytest.fixture
def store(nats_url: str) -> Iterator[Any]:
    with open_store(nats_url) as opened:
        yield opened


def wait(thread: str = "t", pc: int = 5) -> LockClaim:
    return LockClaim(thread, "pay", "acct", 1, pc=pc)


def write(store: Any, id: str, *claims: LockClaim) -> Record:
    current = store.get(id)
    return store.update(current, expected_version=current.version, batch=Batch(locks=claims))  # type: ignore[no-any-return]


def queue(store: NatsStore) -> list[tuple[str, bool, bool]]:
    """The queue of ``acct``: (instance, granted, told) in arrival order."""
    _, _, rows = store._run("read the queue", lambda c: _Queue(c, "acct").read())
    return [(r.id, r.granted, r.told) for r in rows]


def grants(store: Any, id: str) -> list[tuple[str, str, int, str]]:
    return [(m.event, m.thread_id, m.pc, m.input) for m in store.inbox(id)]


def test_a_release_left_by_a_dead_writer_is_finished_by_a_tick(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for id in ("a", "b"):
        store.create(rec(id))
    write(store, "a", wait(pc=5))
    write(store, "b", wait(pc=7))
    assert grants(store, "a") == [("pay.lock", "t", 5, '"acct"')]
    assert queue(store) == [("a", True, True), ("b", False, False)]
    with dying(monkeypatch):
        write(store, "a")  # released in a's record; the queue not yet told
    assert queue(store) == [("a", True, True), ("b", False, False)] and grants(store, "b") == []
    store.claim_due(utcnow(), "w", LEASE)  # a's intent makes it due: the claim finishes it
    assert queue(store) == [("b", True, True)]
    assert grants(store, "b") == [("pay.lock", "t", 7, '"acct"')]  # addressed to b's wait


def test_a_grant_not_yet_told_is_told_once_by_the_next_settle(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for id in ("a", "b"):
        store.create(rec(id))
    write(store, "a", wait())
    write(store, "b", wait(pc=7))

    async def lost(*args: Any) -> None:
        raise OSError("connection lost")

    with monkeypatch.context() as patch:
        patch.setattr(inbox, "deliver", lost)
        write(store, "a")  # the queue granted b; telling it failed (logged, intent kept)
    assert queue(store) == [("b", True, False)] and grants(store, "b") == []
    store.claim_due(utcnow(), "w", LEASE)
    assert queue(store) == [("b", True, True)]
    assert grants(store, "b") == [("pay.lock", "t", 7, '"acct"')]


def test_a_stalled_applier_never_puts_back_rows_a_later_write_released(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(rec("a"))
    with dying(monkeypatch):
        write(store, "a", wait())
    stale = store._run("read", lambda c: c.read("a"))  # its intent: a joins the queue
    assert stale.mail.intent is not None and stale.mail.intent.locks == ("acct",)
    write(store, "a")  # finishes the intent (a holds), then releases
    assert queue(store) == []
    store._run("settle from the stale copy", lambda c: settle(c, stale))
    assert queue(store) == []  # no phantom holder


def test_a_row_survives_in_the_record_and_a_loop_queues_anew(store: Any) -> None:
    for id in ("a", "b"):
        store.create(rec(id))
    write(store, "a", wait())
    write(store, "b", wait(pc=7))
    held = dataclasses.replace(wait(), key=None, pc=0)
    write(store, "a", held)  # a is inside the body: its row keeps the key it came with
    assert queue(store) == [("a", True, True), ("b", False, False)]
    write(store, "a", dataclasses.replace(wait(pc=9), again=True))  # left, came back: behind b
    assert queue(store) == [("b", True, True), ("a", False, False)]
    assert grants(store, "b") == [("pay.lock", "t", 7, '"acct"')]

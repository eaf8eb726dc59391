"""The NATS store's own behaviour, beyond the shared contract suite (tests/test_stores.py).

The record in the KV bucket is the truth and the index entries are hints: these tests kill
writes between the index and the record, leave stale entries behind, and check that nothing is
lost, nothing is claimed twice, the hints are repaired, and a tick reads the due entries only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stmtflow.errors import ConflictError, NotFound, StmtflowError
from stmtflow.stores import (
    Batch,
    MemoryStore,
    Message,
    PendingInput,
    Record,
    Store,
    open_store,
)
from stmtflow.stores._nats_loop import LoopThread

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)

pytestmark = pytest.mark.nats


def question(id: str, assignee: str | None = "ana", event: str = "ask.answer") -> PendingInput:
    return PendingInput(id, event, "_main_", "?", assignee, {"type": "object"}, NOW, None, "Order")


def rec(id: str, **changes: Any) -> Record:
    base = Record(id=id, workflow="Order", data='{"n": 1}', state="{}", status="waiting")
    return dataclasses.replace(base, **changes)


@pytest.fixture
def store(nats_url: str) -> Iterator[Any]:
    with open_store(nats_url) as opened:
        yield opened


def index(store: Any) -> dict[str, list[str]]:
    """Every index subject of the store, by kind (due entries, markers, status and input
    entries)."""
    client, names = store._client, store._client.names

    async def read() -> dict[str, list[str]]:
        await client.ready()
        p = names.prefix
        kinds = {
            "due": [(names.due_stream, f"{p}.due.>"), (names.resuming_stream, f"{p}.resuming.>")],
            "slots": [(names.due_stream, f"{p}.slot.>"), (names.hour_stream, f"{p}.hour.*")],
            "status": [(names.status_stream, f"{p}.st.>")],
            "inputs": [(names.inputs_stream, f"{p}.in.>")],
        }
        return {
            kind: sorted([s for where in wheres for s in await client.subjects(*where)])
            for kind, wheres in kinds.items()
        }

    return store._run("read the index", lambda c: read())  # type: ignore[no-any-return]


def settle(store: Any) -> None:
    """Wait for the store's background index cleanup."""

    async def wait() -> None:
        while store._client.background:
            await asyncio.gather(*store._client.background, return_exceptions=True)

    store._run("settle", lambda c: wait())


def counting_reads(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every record id the store reads from the bucket from now on."""
    reads: list[str] = []
    client = store._client
    read = client.read

    async def counted(id: str) -> Any:
        reads.append(id)
        return await read(id)

    monkeypatch.setattr(client, "read", counted)
    return reads


# -- URLs, the extra, errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nats://127.0.0.1:4222", "bucket=NAME"),
        ("nats://127.0.0.1:4222?bucket=a.b", "bucket=NAME"),
        ("nats://127.0.0.1:4222?bucket=x&colour=red", "unknown parameter.*colour"),
        ("nats://127.0.0.1:4222?bucket=x&storage=disk", "storage must be"),
        ("nats://127.0.0.1:4222?bucket=x&timeout=0", "positive"),
        ("nats://u:secret@?bucket=x", "needs a host"),
    ],
)
def test_bad_urls_are_one_clear_error(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        open_store(url)
    assert "secret" not in str(info.value)


def test_a_missing_nats_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nats", None)
    monkeypatch.setitem(sys.modules, "nats.js.errors", None)
    monkeypatch.delitem(sys.modules, "stmtflow.stores.nats", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'stmtflow\[nats\]'"):
        importlib.import_module("stmtflow.stores.nats")
    with pytest.raises(ImportError, match=r"stmtflow\[nats\]"):
        open_store("nats://127.0.0.1:4222?bucket=x")


def test_an_unreachable_server_is_one_clear_error_on_first_use() -> None:
    store = open_store("nats://u:pw@127.0.0.1:1?bucket=x&timeout=3")  # nothing contacted yet
    with pytest.raises(StmtflowError, match=r"cannot reach NATS at nats://u:\*\*\*@127\.0\.0\.1:1"):
        store.get("a")
    store.close()


def test_a_call_that_does_not_finish_in_time_is_an_error_naming_it() -> None:
    loop = LoopThread("test")
    try:
        with pytest.raises(StmtflowError, match=r"sleeping: no answer within 0\.1 s"):
            loop.run(lambda: asyncio.sleep(5), timeout=0.1, what="sleeping")
        assert loop.run(lambda: asyncio.sleep(0, result=7), timeout=5, what="again") == 7
    finally:
        loop.stop()


def test_a_record_larger_than_max_payload_is_refused_and_nothing_is_stored(store: Any) -> None:
    big = "x" * (store._run("size", lambda c: _max_payload(c)) + 1)
    with pytest.raises(StmtflowError, match=r"'a'.*max_payload"):
        store.create(rec("a", data=f'"{big}"'))
    with pytest.raises(NotFound):
        store.get("a")
    assert index(store) == {"due": [], "slots": [], "status": [], "inputs": []}


async def _max_payload(c: Any) -> int:
    await c.ready()
    return int(c.nc.max_payload)


def test_close_then_use_reconnects_and_closing_twice_is_harmless(store: Any) -> None:
    created = store.create(rec("a"))
    store.close()
    store.close()
    assert store.get("a") == created


# -- the index: what a tick reads --------------------------------------------------------------


def test_a_tick_reads_the_due_records_only(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(150):  # waiting for a callback: no wake-up, in no due slot
        store.create(rec(f"idle-{n:03}"))
    for n in range(150):  # timers between one and 25 hours away
        store.create(rec(f"later-{n:03}", wake_at=NOW + timedelta(hours=1, minutes=10 * n)))
    for n in range(5):
        store.create(rec(f"due-{n}", wake_at=NOW - timedelta(seconds=n)))
    reads = counting_reads(store, monkeypatch)
    claimed = store.claim_due(NOW, "w", LEASE, 10)
    assert sorted(r.id for r in claimed) == [f"due-{n}" for n in range(5)]
    assert sorted(set(reads)) == [f"due-{n}" for n in range(5)]
    reads.clear()
    assert store.claim_due(NOW, "w2", LEASE, 10) == []
    assert store.count_due(NOW) == 5
    assert set(reads) <= {f"due-{n}" for n in range(5)}


def test_a_minute_found_empty_loses_its_marker_then_its_hour(store: Any) -> None:
    store.create(rec("a", wake_at=NOW - timedelta(minutes=5)))
    store.create(rec("b", wake_at=NOW + timedelta(hours=1)))
    assert len(index(store)["slots"]) == 4  # two minutes, in two hours
    (held,) = store.claim_due(NOW, "w", LEASE, 10)
    store.update(
        dataclasses.replace(held, status="finished", wake_at=None),
        expected_version=1,
        fence=held.fence,
        release=True,
    )
    settle(store)
    assert store.claim_due(NOW, "w", LEASE, 10) == []  # a's minute is found empty: unmarked
    assert store.claim_due(NOW, "w", LEASE, 10) == []  # then its hour, without minutes
    minute = _slot(NOW + timedelta(hours=1))
    assert [s.split(".", 2)[2] for s in index(store)["slots"]] == [
        f"hour.{minute // 60}",
        f"slot.{minute // 60}.{minute}",
    ]
    assert [s.split(".")[-2] for s in index(store)["due"]] == ["Yg"]  # only b's entry ("b")


def _slot(t: datetime) -> int:
    from stmtflow.stores._nats_keys import slot_of

    return slot_of(t)


# -- crashes between the index and the record --------------------------------------------------


def _die_before_record_writes(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on a write puts its index entries, then "dies" before the record write."""

    class Died(StmtflowError):
        pass

    async def died(*args: Any, **kwargs: Any) -> int:
        raise Died("the process died here")

    store._run("connect", lambda c: c.ready())
    monkeypatch.setattr(store._client.kv, "update", died)
    monkeypatch.setattr(store._client.kv, "create", died)


def test_a_write_that_died_after_its_index_entries_changes_nothing(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = store.create(rec("a", wake_at=NOW - timedelta(minutes=1)))
    with monkeypatch.context() as m:
        _die_before_record_writes(store, m)
        moved = dataclasses.replace(before, status="finished", wake_at=NOW - timedelta(hours=2))
        with pytest.raises(StmtflowError, match="died"):
            store.update(moved, expected_version=1)
        with pytest.raises(StmtflowError, match="died"):
            store.create(rec("ghost", status="resuming"))
    assert len(index(store)["due"]) == 3  # a's live entry, its pending one, the ghost's
    assert store.get("a") == before
    assert [r.id for r in store.list()] == ["a"]
    assert [r.id for r in store.list(status="finished")] == []
    (claimed,) = store.claim_due(NOW, "w", LEASE, 10)  # once, through its live entry
    assert (claimed.id, claimed.version, claimed.status) == ("a", 1, "waiting")
    assert store.claim_due(NOW + 2 * LEASE, "w2", LEASE, 10)[0].fence == 2
    settle(store)
    assert len(index(store)["due"]) == 3  # pending entries are young: left for their writers


def test_pending_entries_of_a_dead_writer_are_repaired_after_the_grace_period(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stmtflow.stores import _nats_client

    before = store.create(rec("a", wake_at=NOW - timedelta(minutes=1)))
    with monkeypatch.context() as m:
        _die_before_record_writes(store, m)
        with pytest.raises(StmtflowError, match="died"):
            store.update(dataclasses.replace(before, status="finished"), expected_version=1)
        with pytest.raises(StmtflowError, match="died"):
            store.create(rec("ghost", status="resuming"))
    stale_copy = store._client.cache["a"]
    monkeypatch.setattr(_nats_client, "GRACE", timedelta(0))
    assert [r.id for r in store.claim_due(NOW, "w", LEASE, 10)] == ["a"]
    settle(store)
    store.list()  # the listing repairs too
    settle(store)
    left = index(store)
    assert len(left["due"]) == 1 and len(left["status"]) == 1  # a's live entries only
    # The repair rewrote a's record unchanged (a new revision): a writer that was only slow,
    # holding the old revision, loses its compare-and-set, reads again and writes.
    store._client.cache["a"] = stale_copy
    current = store.get("a")
    assert dataclasses.replace(current, fence=0, lease_owner=None, lease_expires=None) == before
    done = store.update(
        dataclasses.replace(current, status="finished", wake_at=None), expected_version=1
    )
    assert store.get("a") == done and done.version == 2
    settle(store)
    assert [s.split(".")[3] for s in index(store)["status"]] == ["finished"]


def test_stale_entries_left_by_a_crash_after_the_record_write_are_dropped_by_readers(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:  # the process "dies" before its cleanup of old entries
        m.setattr(store._client, "later", lambda work: work.close())
        for n in range(4):
            created = store.create(rec(f"r{n}", wake_at=NOW - timedelta(minutes=n)))
            store.update(
                dataclasses.replace(created, status="finished", wake_at=None), expected_version=1
            )
    assert len(index(store)["due"]) == 4 and len(index(store)["status"]) == 8
    assert store.list(status="waiting") == []
    assert store.claim_due(NOW, "w", LEASE, 10) == []
    assert store.count_due(NOW) == 0
    assert [r.id for r in store.list(status="finished")] == ["r0", "r1", "r2", "r3"]
    settle(store)
    left = index(store)
    assert left["due"] == [] and left["slots"] == [] and len(left["status"]) == 4


def test_a_lost_race_after_the_index_write_leaves_the_winner_whole(store: Any) -> None:
    created = store.create(rec("a"))
    won = store.update(dataclasses.replace(created, wake_at=NOW), expected_version=1)
    with pytest.raises(ConflictError, match="expected version 1, found version 2"):
        store.update(dataclasses.replace(created, status="finished"), expected_version=1)
    assert store.get("a") == won
    assert [r.id for r in store.claim_due(NOW, "w", LEASE, 10)] == ["a"]


# -- the pending-input index ------------------------------------------------------------------


def test_rows_travel_in_the_record_and_one_entry_per_assignee_and_workflow_finds_them(
    store: Any,
) -> None:
    created = store.create(rec("a"), inputs=[question("a"), question("a", None, "b.answer")])
    store.create(rec("b"), inputs=[question("b", "bo")])
    store.create(rec("c"))
    assert len(index(store)["inputs"]) == 3  # a: ana and nobody; b: bo; c: none
    assert [r.instance_id for r in store.inputs(assignee="bo")] == ["b"]
    assert [r.event for r in store.inputs(assignee="ana")] == ["ask.answer"]
    # Rows change, their assignees stay: the record alone is rewritten, the entries stay.
    entries = index(store)["inputs"]
    again = [question("a", "ana", "c.answer"), question("a", None, "d.answer")]
    moved = store.update(created, expected_version=1, inputs=again)
    settle(store)
    assert index(store)["inputs"] == entries
    assert [r.event for r in store.inputs()] == ["c.answer", "d.answer", "ask.answer"]
    # Nobody in particular is no longer asked: a's entries are put again, the old ones go.
    store.update(moved, expected_version=2, inputs=[question("a", "ana", "c.answer")])
    settle(store)
    assert len(index(store)["inputs"]) == 2 and not set(index(store)["inputs"]) <= set(entries)
    assert [r.event for r in store.inputs()] == ["c.answer", "ask.answer"]
    store.update(store.get("a"), expected_version=3, inputs=[])
    settle(store)
    assert [r.instance_id for r in store.inputs()] == ["b"]
    assert len(index(store)["inputs"]) == 1


def test_listing_inputs_reads_the_records_that_ask_only(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(30):
        store.create(rec(f"r{n}"), inputs=[question(f"r{n}", "bo")] if n % 10 == 0 else [])
    reads = counting_reads(store, monkeypatch)
    assert [r.instance_id for r in store.inputs(assignee="bo")] == ["r0", "r10", "r20"]
    assert sorted(reads) == ["r0", "r10", "r20"]
    reads.clear()
    assert store.inputs(assignee="ana") == [] and reads == []


def test_questions_of_a_write_that_died_before_its_record_are_not_listed(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stmtflow.stores import _nats_client

    before = store.create(rec("a"), inputs=[question("a")])
    with monkeypatch.context() as m:
        _die_before_record_writes(store, m)
        with pytest.raises(StmtflowError, match="died"):
            store.update(before, expected_version=1, inputs=[question("a", "bo")])
        with pytest.raises(StmtflowError, match="died"):
            store.create(rec("ghost"), inputs=[question("ghost")])
    assert len(index(store)["inputs"]) == 3  # a's live entry, its pending one, the ghost's
    assert store.inputs() == [question("a")]
    assert store.inputs(assignee="bo") == []
    monkeypatch.setattr(_nats_client, "GRACE", timedelta(0))
    assert store.inputs() == [question("a")]  # and the dead writers' entries are repaired
    settle(store)
    assert len(index(store)["inputs"]) == 1
    assert store.get("a").version == 1


def test_stale_input_entries_left_by_a_crash_after_the_record_write_are_dropped(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:  # the process "dies" before its cleanup of old entries
        m.setattr(store._client, "later", lambda work: work.close())
        created = store.create(rec("a"), inputs=[question("a")])
        store.update(created, expected_version=1, inputs=[question("a", "bo")])
    assert len(index(store)["inputs"]) == 2
    assert store.inputs(assignee="ana") == []
    assert store.inputs() == [question("a", "bo")]
    settle(store)
    assert len(index(store)["inputs"]) == 1


# -- the store behaves like the memory store (a model) ----------------------------------------

IDS = ("a", "b", "c")
_times = st.sampled_from([None, -120, -1, 0, 1, 3600]).map(
    lambda s: None if s is None else NOW + timedelta(seconds=s)
)
_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("create"),
            st.sampled_from(IDS),
            st.sampled_from(["waiting", "resuming"]),
            _times,
        ),
        st.tuples(
            st.just("update"),
            st.sampled_from(IDS),
            st.sampled_from(["waiting", "resuming", "finished"]),
            _times,
            st.sampled_from([None, (), ("ana",), ("ana", None), ("bo", None)]),
        ),
        st.tuples(st.just("claim_due"), st.sampled_from([0, 60, 3700]), st.integers(1, 3)),
        st.tuples(st.just("claim"), st.sampled_from(IDS), st.sampled_from(["w1", "w2"])),
        st.tuples(st.just("release"), st.sampled_from(IDS)),
        st.tuples(st.just("post"), st.sampled_from(IDS), st.sampled_from([None, "k1", "k2"])),
        st.tuples(st.just("take"), st.sampled_from(IDS), st.booleans()),
        st.tuples(st.just("start"), st.sampled_from(IDS), st.sampled_from(IDS)),
    ),
    max_size=12,
)


def _apply(store: Store, op: tuple[Any, ...]) -> Any:
    try:
        if op[0] == "create":
            return _view(store.create(rec(op[1], status=op[2], wake_at=op[3], created_at=NOW)))
        if op[0] == "update":
            current = store.get(op[1])
            new = dataclasses.replace(current, status=op[2], wake_at=op[3], data='{"n": 2}')
            rows = None if op[4] is None else [question(op[1], who, f"e{who}") for who in op[4]]
            return _view(store.update(new, expected_version=current.version, inputs=rows))
        if op[0] == "claim_due":
            got = store.claim_due(NOW + timedelta(seconds=op[1]), "w", LEASE, op[2])
            return sorted(_view(r) for r in got)
        if op[0] == "claim":
            return _view(store.claim(op[1], op[2], LEASE, NOW))
        if op[0] == "post":
            return store.post(Message(to=op[1], event="e", input='"x"', key=op[2], buffered=True))
        if op[0] == "take":  # take the first message, keep the rest (or the other way round)
            current = store.get(op[1])
            seqs = tuple(m.seq for m in store.inbox(op[1]))
            batch = Batch(take=seqs[:1], keep=seqs[1:]) if op[2] else Batch(keep=seqs)
            return _view(store.update(current, expected_version=current.version, batch=batch))
        if op[0] == "start":  # a child of op[1], and a message to op[2], with op[1]'s write
            current = store.get(op[1])
            child = rec(f"{op[1]}/c{current.version}", parent_id=op[1], created_at=NOW)
            batch = Batch(create=(child,), post=(Message(to=op[2], event="done"),))
            return _view(store.update(current, expected_version=current.version, batch=batch))
        current = store.get(op[1])
        return store.release(op[1], current.lease_owner or "-", current.fence)
    except (ConflictError, NotFound) as exc:
        return type(exc).__name__


def _view(r: Record) -> tuple[Any, ...]:
    return (r.id, r.status, r.version, r.wake_at, r.lease_owner, r.lease_expires, r.fence, r.data)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops)
def test_the_nats_store_answers_like_the_memory_store(
    nats_url_factory: Callable[[], str], ops: list[tuple[Any, ...]]
) -> None:
    model = MemoryStore()
    with open_store(nats_url_factory()) as store:
        for op in ops:
            assert _apply(store, op) == _apply(model, op), op
            assert [_view(r) for r in store.list()] == [_view(r) for r in model.list()]
            for status in ("waiting", "resuming", "finished"):
                assert [r.id for r in store.list(status=status)] == [
                    r.id for r in model.list(status=status)
                ]
            assert store.count_due(NOW) == model.count_due(NOW)
            for who in (None, "ana"):
                assert store.inputs(assignee=who) == model.inputs(assignee=who)
            for id in IDS:
                assert _mail(store, id) == _mail(model, id), id
                assert [_view(r) for r in store.list(parent_id=id)] == [
                    _view(r) for r in model.list(parent_id=id)
                ]


def _mail(store: Store, id: str) -> tuple[Any, ...]:
    """An inbox as both stores show it (seqs differ: only their order counts)."""
    box = [(m.event, m.input, m.key, m.status) for m in store.inbox(id)]
    return tuple(box), store.known_key(id, "k1"), store.known_key(id, "k2")

"""What only the Redis store has: its URL, key layout, indexes and errors.

The contract itself is `tests/test_stores.py`, which runs on Redis too. Here: the URL forms and
their errors, the documented key layout, the indexes kept in step with every write (checked
against the memory store by hypothesis), and the scripts reading no key they do not name.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import delete_prefix
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stmtflow.errors import ConflictError, NotFound, StmtflowError
from stmtflow.stores import MemoryStore, Record, Store, open_store
from stmtflow.stores.redis import SCHEMA_VERSION

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def rec(id: str, **changes: Any) -> Record:
    base = Record(id=id, workflow="Order", data='{"n": 1}', state="{}", status="waiting")
    return dataclasses.replace(base, **changes)


def test_a_missing_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` now fails
    monkeypatch.delitem(sys.modules, "stmtflow.stores.redis", raising=False)
    with pytest.raises(ImportError, match=re.escape("pip install 'stmtflow[redis]'")):
        open_store("redis://127.0.0.1:6379/0")
    monkeypatch.undo()
    importlib.import_module("stmtflow.stores.redis")


def test_unreachable_redis_is_one_clear_error() -> None:
    with pytest.raises(StmtflowError, match=r"cannot use Redis at redis://:\*\*\*@127\.0\.0\.1:1"):
        open_store("redis://:secret@127.0.0.1:1/0?socket_connect_timeout=2")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis://", "needs a host"),
        ("redis://u:secret@host/db7", "database must be a number"),
        ("redis://host:99999/0", "malformed Redis URL"),
        ("redis://host/0?prefix=", "one non-empty prefix"),
        ("redis://host/0?prefix=a&prefix=b", "one non-empty prefix"),
        ("redis://host/0?socket_timeout=soon", "malformed Redis URL"),
    ],
)
def test_bad_redis_urls_name_the_url(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        open_store(url)
    assert "secret" not in str(info.value)
    assert url.split("?")[0].replace("secret", "***") in str(info.value)


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    with open_store(redis_url) as opened:
        yield opened


def _prefix(url: str) -> str:
    return url.rsplit("prefix=", 1)[1]


def _keys(url: str) -> set[str]:
    import redis

    prefix = _prefix(url)
    with redis.Redis.from_url(url.split("?")[0], decode_responses=True) as client:
        return {key[len(prefix) + 1 :] for key in client.scan_iter(match=f"{prefix}:*")}


@pytest.mark.redis
def test_the_key_layout_is_the_documented_one(redis_url: str, store: Store) -> None:
    store.create(rec("a", wake_at=NOW))
    store.create(rec("b", status="resuming", workflow="Refund"))
    store.set_target("Order", "shop:Order")
    assert _keys(redis_url) == {
        "meta",
        "rec:a",
        "rec:b",
        "created",
        "workflow:Order",
        "workflow:Refund",
        "status:waiting",
        "status:resuming",
        "status:waiting:workflow:Order",
        "status:resuming:workflow:Refund",
        "due",
        "resuming",
        "targets",
    }
    (b,) = store.claim_due(NOW, "w", LEASE, 1)  # crash leftovers first
    store.update(dataclasses.replace(b, status="finished"), expected_version=1, release=True)
    a = store.get("a")
    store.update(dataclasses.replace(a, wake_at=None), expected_version=1)
    # Emptied sorted sets vanish in Redis: no index keeps an id whose record moved on.
    assert _keys(redis_url) >= {
        "status:finished",
        "status:finished:workflow:Refund",
        "ended",
        "ended:workflow:Refund",
    }
    assert not _keys(redis_url) & {"due", "resuming", "status:resuming"}


@pytest.mark.redis
def test_the_prefix_parameter_isolates_stores(redis_server: str) -> None:
    urls = [f"{redis_server}?prefix=stmtflow_test_iso_{n}" for n in range(2)]
    try:
        with open_store(urls[0]) as a, open_store(urls[1]) as b:
            a.create(rec("x"))
            assert b.list() == [] and b.targets() == {}
            with pytest.raises(NotFound):
                b.get("x")
            assert [r.id for r in a.list()] == ["x"]
    finally:
        for url in urls:
            delete_prefix(redis_server, _prefix(url))


@pytest.mark.redis
def test_a_newer_key_layout_is_refused(redis_url: str, store: Store) -> None:
    import redis

    with redis.Redis.from_url(redis_url.split("?")[0]) as client:
        client.hset(f"{_prefix(redis_url)}:meta", "schema_version", "99")
    with pytest.raises(StmtflowError, match="key layout version 99"):
        open_store(redis_url)


@pytest.mark.redis
def test_a_layout_1_database_is_raised_to_the_latest_and_its_records_read_as_roots(
    redis_url: str, store: Store
) -> None:
    """Layout 2 added parents, inboxes and the children index: keys a layout 1 database only
    lacks, so opening one raises its number and its records read as roots with empty inboxes."""
    import redis

    store.create(rec("old"))
    meta, key = f"{_prefix(redis_url)}:meta", f"{_prefix(redis_url)}:rec:old"
    with redis.Redis.from_url(redis_url.split("?")[0], decode_responses=True) as client:
        client.hset(meta, "schema_version", "1")
        client.hdel(key, "root_id")  # as a layout 1 release wrote it
        with open_store(redis_url) as reopened:
            assert client.hget(meta, "schema_version") == str(SCHEMA_VERSION)
            old = reopened.get("old")
            assert (old.parent_id, old.root_id, old.inbox) == (None, "old", False)
            assert reopened.inbox("old") == [] and reopened.list(parent_id="old") == []


def test_no_script_reads_keys_it_does_not_name() -> None:
    from stmtflow.stores import _redis_history as history
    from stmtflow.stores import _redis_inbox as inbox
    from stmtflow.stores import _redis_lua as lua
    from stmtflow.stores import _redis_outbox as outbox

    fragments = [inbox.INBOX_LUA, history.HISTORY_LUA, history.PRUNE_LUA, outbox.OUTBOX_LUA]
    scripts = [getattr(lua, name) for name in lua.__all__ if name.isupper()] + fragments
    wanted = {"PRUNE", "OUTBOX_CLAIM", "OUTBOX_SENT", "OUTBOX_RETRY", "FILL_ENDED"}
    assert wanted <= set(lua.__all__)
    for script in scripts:
        assert not re.search(r"'(KEYS|SCAN|HSCAN|ZSCAN)'", script, re.IGNORECASE), script[:80]


# -- the indexes follow every write: the Redis store answers as the memory store does ----------

_STATUSES = ["resuming", "waiting", "finished"]
_OFFSETS = [None, -60, 0, 60]  # wake_at: none, past, now, future (seconds from NOW)

_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("create"),
            st.integers(0, 5),
            st.sampled_from(["Order", "Refund"]),
            st.sampled_from(_STATUSES),
            st.sampled_from(_OFFSETS),
        ),
        st.tuples(
            st.just("update"),
            st.integers(0, 5),
            st.sampled_from(_STATUSES),
            st.sampled_from(_OFFSETS),
            st.booleans(),
        ),
        st.tuples(st.just("claim_due"), st.integers(0, 120), st.integers(1, 3)),
        st.tuples(st.just("claim"), st.integers(0, 5), st.sampled_from(["w1", "w2"])),
        st.tuples(st.just("release"), st.integers(0, 5)),
    ),
    max_size=25,
)


def _apply(store: Store, op: tuple[Any, ...]) -> Any:
    """One operation; the answer without the store's clock (updated_at, default created_at)."""
    kind, *args = op
    try:
        if kind == "create":
            n, workflow, status, offset = args
            wake = None if offset is None else NOW + timedelta(seconds=offset)
            made = rec(f"r{n}", workflow=workflow, status=status, wake_at=wake)
            return _plain(store.create(dataclasses.replace(made, created_at=NOW)))
        if kind == "update":
            n, status, offset, release = args
            current = store.get(f"r{n}")
            wake = None if offset is None else NOW + timedelta(seconds=offset)
            changed = dataclasses.replace(current, status=status, wake_at=wake)
            fence = current.fence if current.lease_owner else None
            written = store.update(
                changed, expected_version=current.version, fence=fence, release=release
            )
            return _plain(written)
        if kind == "claim_due":
            seconds, limit = args
            got = store.claim_due(NOW + timedelta(seconds=seconds), "w", LEASE, limit)
            return [_plain(r) for r in got]
        if kind == "claim":
            n, owner = args
            return _plain(store.claim(f"r{n}", owner, LEASE, NOW))
        n = args[0]
        current = store.get(f"r{n}")
        return store.release(current.id, current.lease_owner or "-", current.fence)
    except (ConflictError, NotFound) as exc:
        return type(exc).__name__


def _plain(record: Record) -> Record:
    return dataclasses.replace(record, updated_at=None)


def _views(store: Store) -> Any:
    listed = {
        (status, workflow): [r.id for r in store.list(status=status, workflow=workflow)]
        for status in [None, *_STATUSES]
        for workflow in [None, "Order", "Refund"]
    }
    due = [store.count_due(NOW + timedelta(seconds=s)) for s in (-120, 0, 120)]
    return listed, due, [_plain(r) for r in store.list()]


@pytest.mark.redis
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=_ops)
def test_indexes_stay_in_step_with_every_write(
    redis_server: str, ops: list[tuple[Any, ...]], fresh_prefix: Callable[[], str]
) -> None:
    model = MemoryStore()
    prefix = fresh_prefix()
    with open_store(f"{redis_server}?prefix={prefix}") as store:
        for op in ops:
            assert _apply(store, op) == _apply(model, op), op
        assert _views(store) == _views(model)


@pytest.fixture
def fresh_prefix(redis_server: str) -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def new() -> str:
        made.append(f"stmtflow_test_prop_{id(made)}_{len(made)}")
        return made[-1]

    yield new
    for prefix in made:
        delete_prefix(redis_server, prefix)


# -- what claim_due and count_due read -----------------------------------------------------------


def _calls(client: Any) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()})


@pytest.mark.redis
def test_claim_due_reads_the_due_records_not_the_stored_ones(private_redis: Any) -> None:
    # A server of the test's own, so its command counters are this test's alone.
    import redis

    url = f"{private_redis.url}?prefix=cost"
    with open_store(url) as store, redis.Redis.from_url(private_redis.url) as client:
        for i in range(2000):  # asleep: no wake-up, or one an hour ahead
            wake = NOW + timedelta(hours=1) if i % 2 else None
            store.create(rec(f"asleep-{i:04}", wake_at=wake))
        for i in range(5):  # due, but held by a live lease: skipped, not taken
            store.create(
                rec(
                    f"held-{i}",
                    wake_at=NOW - timedelta(minutes=10),
                    lease_owner="x",
                    lease_expires=NOW + LEASE,
                )
            )
        for i in range(3):
            store.create(rec(f"due-{i}", wake_at=NOW - timedelta(minutes=i)))
        assert store.claim_due(NOW - timedelta(days=1), "w", LEASE) == []  # loads the script
        before = _calls(client)
        claimed = store.claim_due(NOW, "w", LEASE, limit=2)
        assert store.count_due(NOW) == 8
        spent = _calls(client) - before
    assert [r.id for r in claimed] == ["due-2", "due-1"]
    # One script: a page of ids from each index, one lease check per due id looked at (the five
    # held ones and the two taken), the two claims; nothing per record merely stored.
    assert spent["evalsha"] + spent["eval"] == 1 and spent["zcount"] == 1
    assert spent["hget"] == 7 and spent["hincrby"] == 2 and spent["hgetall"] == 2
    assert spent["zrangebyscore"] <= 5
    assert not {"keys", "scan", "hscan", "zscan", "zrange"} & set(spent)


@pytest.mark.redis
def test_other_url_parameters_go_to_redis_py(redis_url: str) -> None:
    with open_store(f"{redis_url}&socket_timeout=3&health_check_interval=1") as store:
        assert store.create(rec("a")).version == 1
        client = store._redis  # type: ignore[attr-defined]
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["socket_timeout"], kwargs["health_check_interval"]) == (3.0, 1)
        assert kwargs["socket_connect_timeout"] == 10.0  # the store's default, not in the URL


# -- large states kept in parts ------------------------------------------------------------------


def _state(threads: list[tuple[str, int]], pc: int) -> str:
    body = ",".join(f'{{"id":"{tid}","n":{n}}}' for tid, n in threads)
    return f'{{"id":"a","threads":[{body}],"pc":{pc}}}'


_thread_lists = st.lists(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 3)), max_size=8).map(
        lambda ts: list(dict(ts).items())  # unique thread ids, in first-seen order
    ),
    min_size=1,
    max_size=12,
)


@pytest.mark.redis
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(states=_thread_lists, writers=st.lists(st.booleans(), min_size=12, max_size=12))
def test_a_state_kept_in_parts_reads_back_byte_for_byte(
    redis_server: str,
    states: list[list[tuple[str, int]]],
    writers: list[bool],
    fresh_prefix: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stmtflow.stores import _redis_parts

    monkeypatch.setattr(_redis_parts, "PARTS_FROM", 0)
    url = f"{redis_server}?prefix={fresh_prefix()}"
    # Two stores: each one's cache of the pieces goes stale whenever the other one writes.
    with open_store(url) as a, open_store(url) as b:
        current = a.create(rec("a", state=_state(states[0], 0)))
        for pc, (threads, by_b) in enumerate(zip(states[1:], writers, strict=False), start=1):
            writer = b if by_b else a
            text = _state(threads, pc)
            if pc % 2:
                current = writer.update(
                    dataclasses.replace(current, state=text), expected_version=current.version
                )
            else:
                current = writer.update_free(
                    dataclasses.replace(current, state=text),
                    expected_version=current.version,
                    now=NOW,
                )
            assert current.state == text
            for reader in (a, b, a):
                assert reader.get("a") == current
            assert [r.state for r in b.list()] == [text]


@pytest.mark.redis
def test_pieces_inserted_between_neighbours_until_no_room_left(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stmtflow.stores import _redis_parts

    monkeypatch.setattr(_redis_parts, "PARTS_FROM", 0)
    monkeypatch.setattr(_redis_parts, "GAP", 4)  # room for a few inserts only
    with open_store(redis_url) as store:
        threads = [("first", 0), ("last", 0)]
        current = store.create(rec("a", state=_state(threads, 0)))
        for n in range(12):  # each new thread goes just after the first: halving the gap
            threads.insert(1, (f"t{n}", n))
            text = _state(threads, n + 1)
            current = store.update(
                dataclasses.replace(current, state=text), expected_version=current.version
            )
            assert store.get("a").state == text
        with open_store(redis_url) as other:  # no pieces cached: every one read from Redis
            assert other.get("a") == current
    assert "parts:a" in _keys(redis_url)


@pytest.mark.redis
def test_pending_input_rows_are_replaced_whole_and_leave_no_index_behind(
    redis_url: str, store: Store
) -> None:
    from stmtflow.stores._inputs import PendingInput

    def row(thread: str, assignee: str | None, minutes: int) -> PendingInput:
        at = NOW + timedelta(minutes=minutes)
        return PendingInput("a", "ok", thread, "Approve?", assignee, {}, at, None, "Order")

    first = [row("t1", "ana", 2), row("t2", "bo", 1), row("t3", None, 1)]
    current = store.create(rec("a"), inputs=first)
    store.create(rec("b"), inputs=None)
    assert [(r.thread_id, r.assignee) for r in store.inputs()] == [
        ("t2", "bo"),
        ("t3", None),
        ("t1", "ana"),
    ]
    assert [r.thread_id for r in store.inputs(assignee="ana", workflow="Order")] == ["t1"]
    assert store.inputs(assignee="ana", workflow="Refund") == []
    current = store.update(current, expected_version=1)  # inputs=None: rows kept
    assert len(store.inputs()) == 3
    with pytest.raises(ValueError, match="names instance 'b'"):
        store.update(
            current, expected_version=2, inputs=[dataclasses.replace(first[0], instance_id="b")]
        )
    assert store.get("a") == current and len(store.inputs()) == 3
    current = store.update(current, expected_version=2, inputs=[row("t9", "cy", 0)])
    assert [(r.thread_id, r.assignee) for r in store.inputs()] == [("t9", "cy")]
    assert store.inputs(assignee="ana") == []
    store.update_free(current, expected_version=3, now=NOW, inputs=())
    assert store.inputs() == []
    assert not {key for key in _keys(redis_url) if "input" in key}


# -- histories, prune and the outbox (layout 3) -------------------------------------------------


@pytest.mark.redis
def test_a_layout_2_database_is_raised_to_3_and_its_ended_instances_can_be_pruned(
    redis_url: str, store: Store
) -> None:
    """Layout 3 added histories, the outbox and ``P:ended``: opening a layout 2 database files
    the instances that ended before (by their last write) so that prune finds them."""
    import redis

    for n in range(7):
        store.create(rec(f"old-{n}", status=["finished", "failed", "cancelled"][n % 3]))
    store.create(rec("live"))
    prefix = _prefix(redis_url)
    with redis.Redis.from_url(redis_url.split("?")[0], decode_responses=True) as client:
        client.hset(f"{prefix}:meta", "schema_version", "2")
        client.delete(f"{prefix}:ended", f"{prefix}:ended:workflow:Order")  # as layout 2 left it
        with open_store(redis_url) as reopened:
            assert client.hget(f"{prefix}:meta", "schema_version") == "3"
            assert client.zcard(f"{prefix}:ended") == 7
            pruned = reopened.prune(NOW + timedelta(days=3650), now=NOW)  # type: ignore[attr-defined]
            assert sorted(pruned) == [f"old-{n}" for n in range(7)]
            assert [r.id for r in reopened.list()] == ["live"]


@pytest.mark.redis
def test_prune_leaves_no_key_of_the_instance_behind(redis_url: str) -> None:
    import stmtflow as sf

    class Asks(sf.WorkflowState):
        done: bool = False

        def definition(self) -> sf.Section:
            return sf.S(
                sf.Step("note", self.note),
                sf.Wait("gate", sf.OnEvent("go", self.go)),
            )

        def note(self) -> None:
            sf.emit("noted", 1)

        def go(self, _: Any) -> None:
            self.done = True

    with sf.Engine(redis_url, [Asks]) as engine:
        engine.start(Asks, id="p-1")
        engine.start(Asks, id="p-2")
        engine.send("p-1", "go", None)
        before = _keys(redis_url)
        assert {"history:p-1", "snapshot:p-1", "snapshots:p-1", "ended"} <= before
        assert engine.prune(older_than=timedelta(0)) == 1
        gone = before - _keys(redis_url)
        assert {k for k in _keys(redis_url) if k.endswith("p-1")} == {"outbox:of:p-1"}
        assert {"rec:p-1", "history:p-1", "snapshot:p-1", "snapshots:p-1", "ended"} <= gone
        assert [m.instance_id for m in engine.outbox_messages()] == ["p-1", "p-2"]
        engine.store.get("p-2")


@pytest.mark.redis
def test_history_and_snapshots_are_trimmed_exactly_at_each_write(
    redis_url: str, store: Store
) -> None:
    from stmtflow.stores import Batch
    from stmtflow.stores._history import HistoryEvent, HistoryWrite

    current = store.create(rec("h"))
    for n in range(1, 8):
        events = tuple(
            HistoryEvent(seq=0, at=NOW, kind="step_completed", name=f"s{n}") for _ in "ab"
        )
        write = HistoryWrite(events, limit=5, snapshots=3, data=f'{{"n": {n}}}', state="{}")
        current = store.update(
            current, expected_version=current.version, batch=Batch(history=write)
        )
    kept, dropped = store.history("h")  # type: ignore[attr-defined]
    assert [e.seq for e in kept] == [10, 11, 12, 13, 14] and dropped == 9
    assert [e.snapshot for e in kept] == [10, 12, 12, 14, 14]
    found = {s for s in range(1, 15) if store.snapshot("h", s) is not None}  # type: ignore[attr-defined]
    assert found == {12, 14}  # the snapshots of the last 3 seqs (12..14)
    assert store.snapshot("h", 14).data == '{"n": 7}'  # type: ignore[attr-defined]
    # A refused write records nothing.
    with pytest.raises(ConflictError):
        store.update(current, expected_version=1, batch=Batch(history=write))
    assert store.history("h")[0] == kept  # type: ignore[attr-defined]

"""The NATS store's histories beyond the shared suites (tests/test_history.py, test_rewind.py,
test_prune_stuck.py): where events and snapshots live, what a crash between moving events and
writing the record leaves, and what a prune reads and deletes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stmtflow.stores import Batch, Record, open_store
from stmtflow.stores._history import HistoryEvent, HistoryWrite
from stmtflow.stores._nats_history import TAIL
from stmtflow.stores._nats_keys import encode
from tests.test_nats_store import counting_reads, settle

pytestmark = pytest.mark.nats

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(nats_url: str) -> Iterator[Any]:
    with open_store(nats_url) as opened:
        yield opened


def keys(store: Any, kind: str) -> list[str]:
    """The bucket's keys of one kind (``h``: history chunks, ``s``: snapshots, ``i``: records)."""
    bucket = store.settings.bucket

    async def read(c: Any) -> list[str]:
        await c.ready()
        subjects = await c.subjects(f"KV_{bucket}", f"$KV.{bucket}.{kind}.>")
        return sorted(s.split(".", 2)[2] for s in subjects)

    return store._run("list keys", read)  # type: ignore[no-any-return]


def write(store: Any, id: str, n: int, *, limit: int = 1000, snapshots: int = 3, **kw: Any) -> Any:
    """Write ``id`` once with ``n`` events (data: the last event's number)."""
    current = store.get(id)
    last = store.history(id)[0]
    base = last[-1].seq if last else 0
    events = tuple(HistoryEvent(0, NOW, "step_completed", name=f"s{base + i}") for i in range(n))
    data = f'{{"n": {base + n}}}'
    history = HistoryWrite(events, limit, snapshots, data, "{}")
    record = dataclasses.replace(current, data=data, **kw)
    return store.update(record, expected_version=current.version, batch=Batch(history=history))


def test_events_move_from_the_record_to_chunk_keys_and_read_back_in_order(store: Any) -> None:
    store.create(Record(id="a", workflow="W", data="{}", state="{}"))
    for _ in range(40):
        write(store, "a", 3)
    events, dropped = store.history("a")
    assert [e.seq for e in events] == list(range(1, 121)) and dropped == 0
    assert [e.name for e in events] == [f"s{i}" for i in range(120)]
    tail = store._client.cache["a"].hist.tail
    assert 0 < len(tail) <= TAIL + 3  # the record carries the latest events only
    assert keys(store, "h") == [f"h.YQ.{_created(store, 'a')}.{k}" for k in (0, 1)]


def test_the_cap_drops_the_oldest_and_their_chunks(store: Any) -> None:
    store.create(Record(id="a", workflow="W", data="{}", state="{}"))
    for _ in range(60):
        write(store, "a", 5, limit=100)
    settle(store)
    events, dropped = store.history("a")
    assert [e.seq for e in events] == list(range(201, 301)) and dropped == 200
    chunks = [int(k.rsplit(".", 1)[1]) for k in keys(store, "h")]
    assert min(chunks) == 200 // 64  # the chunks wholly before seq 201 are gone


def test_only_the_latest_snapshots_are_kept_and_the_newest_is_the_record_itself(
    store: Any,
) -> None:
    store.create(Record(id="a", workflow="W", data="{}", state="{}"))
    for _ in range(TAIL):  # the TAIL-th event's write purges the keys of older snapshots
        write(store, "a", 1, snapshots=3)
    settle(store)
    assert sorted(int(k.rsplit(".", 1)[1]) for k in keys(store, "s")) == [TAIL - 2, TAIL - 1]
    assert store.snapshot("a", TAIL - 3) is None
    kept = [store.snapshot("a", seq).data for seq in range(TAIL - 2, TAIL + 1)]
    assert kept == [f'{{"n": {n}}}' for n in range(TAIL - 2, TAIL + 1)]  # the last: the record's
    write(store, "a", 1, snapshots=3)
    settle(store)
    assert store.snapshot("a", TAIL - 2) is None  # past the cap, its key left until the next purge
    assert len(keys(store, "s")) == 3


def test_a_crash_after_moving_events_before_the_record_write_loses_and_doubles_nothing(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(Record(id="a", workflow="W", data="{}", state="{}"))
    for _ in range(TAIL):
        write(store, "a", 1)
    client = store._client

    async def dies(*args: Any, **kwargs: Any) -> Any:
        raise OSError("the writer died")

    with monkeypatch.context() as patch:
        patch.setattr(client, "write", dies)
        with pytest.raises(Exception, match="the writer died"):
            write(store, "a", 1)  # moved its tail to a chunk, then died before the record
    assert keys(store, "h")  # the tail's events are in a chunk, and still in the record
    events, _ = store.history("a")
    assert [e.seq for e in events] == list(range(1, TAIL + 1))
    write(store, "a", 1)  # moves them again: a merge that changes nothing
    assert [e.seq for e in store.history("a")[0]] == list(range(1, TAIL + 2))


def test_prune_reads_the_ended_instances_of_past_hours_only_and_deletes_every_key(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for id in ("old", "running"):
        store.create(Record(id=id, workflow="W", data="{}", state="{}"))
        for _ in range(7):
            write(store, id, 3)
    write(store, "old", 1, status="finished")
    settle(store)
    reads = counting_reads(store, monkeypatch)
    assert store.prune(datetime.now(UTC) - timedelta(hours=2), now=datetime.now(UTC)) == []
    assert reads == []  # the hour "old" ended in is after the cut-off: no record read
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert store.prune(later, now=later) == ["old"]
    assert reads == ["old"]  # the running one is never read
    settle(store)
    assert all(k.split(".")[1] != "b2xk" for kind in "ihs" for k in keys(store, kind))  # "old"
    assert store.history("old") == ([], 0)
    assert store.history("running")[0][-1].seq == 21


def test_a_store_of_layout_1_has_its_ended_instances_filed_on_first_use(nats_url: str) -> None:
    with open_store(nats_url) as store:
        store.create(Record(id="old", workflow="W", data="{}", state="{}", status="finished"))
        store.create(Record(id="live", workflow="W", data="{}", state="{}", status="waiting"))
        settle(store)
        bucket, c = store.settings.bucket, store._client

        async def as_layout_1(c: Any) -> None:  # what release 1 left: no ended entries
            stored = await c.read("old")
            doc = json.loads(encode(dataclasses.replace(stored, end=None)))
            await c.kv.put("i.b2xk", json.dumps(doc).encode())
            await c.js.purge_stream(f"STMTFLOW_{bucket}_ENDED")
            await c.kv.put("meta.schema", b"1")

        store._run("downgrade", as_layout_1)
        assert c.names.ended_stream.endswith("_ENDED")
    with open_store(nats_url) as store:
        later = datetime.now(UTC) + timedelta(seconds=1)
        assert store.prune(later, now=later) == ["old"]
        assert [r.id for r in store.list()] == ["live"]
        assert store._run("layout", lambda c: c.kv.get("meta.schema")).value == b"2"


def _created(store: Any, id: str) -> int:
    created = store.get(id).created_at
    return (created - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

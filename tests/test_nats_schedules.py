"""How the NATS store finds due schedules (docs/stores.md, "Schedules on NATS"): a tick reads the
clock, the near slot and the current minute, never every schedule; entries follow their records.

The behaviour every store shares is in tests/test_store_schedules.py and tests/test_schedules.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stmtflow.stores import _nats_schedules
from stmtflow.stores._nats_client import Client
from stmtflow.stores._schedules import ScheduleRow
from stmtflow.stores.nats import NatsStore

pytestmark = pytest.mark.nats

NOW = datetime.now(UTC).replace(second=30, microsecond=0)


@pytest.fixture
def store(nats_url: str) -> Iterator[NatsStore]:
    with NatsStore(nats_url) as opened:
        yield opened


def put(store: NatsStore, name: str, due: datetime | None, expected: int = 0) -> ScheduleRow:
    return store.put_schedule(ScheduleRow(name, "{}", due), expected_version=expected)


def entries(store: NatsStore) -> list[str]:
    async def every(c: Client) -> list[str]:
        await c.ready()
        return await c.subjects(c.names.schedules_stream, f"{c.names.prefix}.sd.>")

    return sorted(store._run("list the schedule entries", every))


def settled(store: NatsStore, count: int) -> list[str]:
    """The entries once the background purges have left ``count`` (or after 5 seconds)."""
    deadline = time.monotonic() + 5
    while len(found := entries(store)) != count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_an_idle_tick_makes_the_same_requests_whatever_the_number_of_schedules(
    store: NatsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: dict[str, int] = {"subjects": 0, "reads": 0}
    subjects, read = Client.subjects, _nats_schedules._Schedules.read

    async def counted_subjects(self: Client, *args: Any) -> list[str]:
        calls["subjects"] += 1
        return await subjects(self, *args)

    async def counted_read(self: Any, name: str) -> Any:
        calls["reads"] += 1
        return await read(self, name)

    monkeypatch.setattr(Client, "subjects", counted_subjects)
    monkeypatch.setattr(_nats_schedules._Schedules, "read", counted_read)

    def idle_tick(now: datetime) -> dict[str, int]:
        store.due_schedules(now)  # moves the clock to this minute, if it was behind
        calls.update(subjects=0, reads=0)
        assert store.due_schedules(now) == []
        return dict(calls)

    put(store, "yearly-0", NOW + timedelta(days=30))  # makes the clock, at the real minute
    one = idle_tick(datetime.now(UTC))  # not before the clock's minute
    for n in range(1, 60):
        put(store, f"yearly-{n}", NOW + timedelta(days=30, minutes=n))
    assert idle_tick(datetime.now(UTC)) == one == {"subjects": 2, "reads": 0}  # near, this minute


def test_a_write_overtaken_by_a_tick_is_still_found(
    store: NatsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(store, "first", NOW + timedelta(days=10))  # makes the clock, at the real minute
    assert store.due_schedules(NOW + timedelta(hours=3)) == []  # a tick 3 hours ahead: swept
    # The writer read the clock before that tick moved it, so it files its time (an hour
    # ahead) in that minute, which the tick has already swept: its check after the write
    # must move the entry to the near slot.
    real = _nats_schedules._Schedules.clock
    stale: list[Any] = []

    async def clock_read_before_the_tick(self: Any, create: bool) -> Any:
        got = await real(self, create)
        if not stale:
            stale.append(_nats_schedules._Clock(got.passed - 180, got.passed - 180, got.revision))
            return stale[0]
        return got

    monkeypatch.setattr(_nats_schedules._Schedules, "clock", clock_read_before_the_tick)
    late = put(store, "late", NOW + timedelta(hours=1))
    assert stale, "the writer read the clock"
    assert store.due_schedules(NOW + timedelta(hours=3)) == [late]


def test_entries_follow_their_record_and_go_with_it(store: NatsStore) -> None:
    row = put(store, "a", NOW + timedelta(hours=2))
    for hours in range(3, 8):
        row = put(store, "a", NOW + timedelta(hours=hours), expected=row.version)
    (only,) = settled(store, 1)
    assert only.endswith(f".{row.version}")  # the stale entries were purged
    assert store.due_schedules(NOW + timedelta(hours=8)) == [row]  # moved to the near slot
    assert len(entries(store)) == 1
    assert store.delete_schedule("a")
    assert entries(store) == []
    assert store.due_schedules(NOW + timedelta(days=1)) == []

"""The schedule rows of the `Store` contract, on every store: compare-and-set writes, and the
due ones found earliest first, whatever the times (past, this minute, hours ahead).

Times are taken around the real clock: the NATS store files a due time by how it stands to the
minute its ticks have reached (docs/stores.md, "Schedules on NATS"), so a far future time takes
the path a fake clock in the past would never reach.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from store_urls import EVERY_STORE, store_url

from stmtflow.errors import ConflictError, NotFound
from stmtflow.stores import Store, open_store
from stmtflow.stores._schedules import ScheduleRow


@pytest.fixture(params=EVERY_STORE)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with open_store(store_url(request, tmp_path, request.param, "rows.db")) as opened:
        yield opened


NOW = datetime.now(UTC).replace(second=30, microsecond=0)


def put(store: Store, name: str, due: datetime | None, expected: int = 0) -> ScheduleRow:
    return store.put_schedule(
        ScheduleRow(name=name, spec=f'{{"n":"{name}"}}', due_at=due), expected_version=expected
    )


def names(rows: list[ScheduleRow]) -> list[str]:
    return [r.name for r in rows]


def test_writes_are_compare_and_set_on_the_version(store: Store) -> None:
    first = put(store, "a", NOW)
    assert first.version == 1 and store.get_schedule("a") == first
    with pytest.raises(ConflictError, match="a schedule named 'a' already exists"):
        put(store, "a", NOW)
    second = put(store, "a", NOW + timedelta(hours=1), expected=1)
    assert second.version == 2 and store.get_schedule("a").due_at == NOW + timedelta(hours=1)
    with pytest.raises(ConflictError, match="expected version 1, found version 2"):
        put(store, "a", None, expected=1)
    assert store.get_schedule("a") == second  # the refused write stored nothing
    with pytest.raises(ConflictError, match="removed by another writer"):
        put(store, "gone", None, expected=3)
    with pytest.raises(NotFound, match="no schedule named 'gone'"):
        store.get_schedule("gone")


def test_due_schedules_are_found_earliest_first_up_to_the_limit(store: Store) -> None:
    put(store, "later", NOW + timedelta(hours=3))
    put(store, "soon", NOW + timedelta(minutes=1))
    put(store, "past", NOW - timedelta(hours=2))
    put(store, "now-b", NOW)
    put(store, "now-a", NOW)
    put(store, "paused", None)
    put(store, "in-two-hours", NOW + timedelta(hours=2, seconds=1))

    assert names(store.due_schedules(NOW - timedelta(days=1))) == []
    assert names(store.due_schedules(NOW)) == ["past", "now-a", "now-b"]
    assert names(store.due_schedules(NOW, limit=2)) == ["past", "now-a"]
    assert names(store.due_schedules(NOW + timedelta(minutes=1))) == [
        "past",
        "now-a",
        "now-b",
        "soon",
    ]
    assert names(store.due_schedules(NOW + timedelta(hours=2))) == [
        "past",
        "now-a",
        "now-b",
        "soon",
    ]
    later = store.due_schedules(NOW + timedelta(hours=4))
    assert names(later) == ["past", "now-a", "now-b", "soon", "in-two-hours", "later"]
    assert names(store.list_schedules()) == [
        "in-two-hours",
        "later",
        "now-a",
        "now-b",
        "past",
        "paused",
        "soon",
    ]


def test_a_schedule_moved_on_is_found_at_its_new_time_only(store: Store) -> None:
    row = put(store, "a", NOW + timedelta(hours=1))
    assert store.due_schedules(NOW + timedelta(hours=2)) == [row]
    moved = put(store, "a", NOW + timedelta(hours=5), expected=1)
    assert store.due_schedules(NOW + timedelta(hours=2)) == []
    assert store.due_schedules(NOW + timedelta(hours=5)) == [moved]
    paused = put(store, "a", None, expected=2)
    assert store.due_schedules(NOW + timedelta(days=2)) == []
    again = put(store, "a", NOW - timedelta(minutes=5), expected=paused.version)
    assert store.due_schedules(NOW + timedelta(days=2)) == [again]


def test_a_removed_schedule_is_neither_listed_nor_due(store: Store) -> None:
    put(store, "a", NOW)
    put(store, "b", NOW + timedelta(hours=1))
    assert store.delete_schedule("a") and store.delete_schedule("b")
    assert not store.delete_schedule("a")
    assert store.list_schedules() == [] and store.due_schedules(NOW + timedelta(days=1)) == []
    assert put(store, "a", NOW).version == 1  # the name is free again

"""The store contract: one suite, run against every store (memory, SQLite file, PostgreSQL,
Redis, NATS)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from stmtflow.errors import ConflictError, NotFound, StmtflowError
from stmtflow.state import WorkflowStatus
from stmtflow.stores import DEFAULT_URL, MemoryStore, Record, SQLiteStore, Store, open_store
from stmtflow.stores.base import with_changes

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def rec(id: str, **changes: object) -> Record:
    base = Record(id=id, workflow="Order", data='{"n": 1}', state="{}", status="waiting")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-parts", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
    ]
)
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'stmtflow.db'}"
    if request.param.startswith("redis"):
        if request.param == "redis-parts":  # every state with threads kept in parts
            from stmtflow.stores import _redis_parts

            monkeypatch.setattr(_redis_parts, "PARTS_FROM", 0)
        return str(request.getfixturevalue("redis_url"))
    if request.param == "nats":
        return str(request.getfixturevalue("nats_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def durable_url(store_url: str) -> str:
    if store_url == "memory://":
        pytest.skip("the memory store is not shared between opens or processes")
    return store_url


# -- create / get / list -----------------------------------------------------------------------


def test_create_then_get_returns_the_stored_record(store: Store) -> None:
    data = '{"b": 1,  "a": "\u00e9", "n": 1.50}'
    created = store.create(rec("a", data=data, wake_at=NOW, error="boom"))
    assert (created.version, created.fence, created.lease_owner) == (1, 0, None)
    assert created.data == data  # byte for byte, never re-serialised
    assert created.created_at is not None and created.created_at.tzinfo is UTC
    assert created.updated_at == created.created_at
    assert store.get("a") == created
    assert isinstance(store, Store)


def test_duplicate_id_is_a_conflict_and_keeps_the_stored_record(store: Store) -> None:
    first = store.create(rec("a", data='{"first": true}'))
    with pytest.raises(ConflictError, match="'a' already exists"):
        store.create(rec("a", data='{"second": true}'))
    assert store.get("a") == first


def test_missing_ids_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        store.get("nope")
    with pytest.raises(NotFound):
        store.update(rec("nope"), expected_version=1)
    with pytest.raises(NotFound):
        store.update_free(rec("nope"), expected_version=1, now=NOW, owner="w", lease=LEASE)
    with pytest.raises(NotFound):
        store.claim("nope", "w", LEASE, NOW)
    with pytest.raises(NotFound):
        store.renew("nope", "w", 1, LEASE, NOW)
    with pytest.raises(NotFound):
        store.release("nope", "w", 1)


def test_list_orders_by_creation_and_filters(store: Store) -> None:
    t0 = NOW - timedelta(days=1)
    store.create(rec("c", created_at=t0, status="finished"))
    store.create(rec("b", created_at=t0 + timedelta(seconds=1), workflow="Refund"))
    store.create(rec("a", created_at=t0 + timedelta(seconds=2)))
    store.create(rec("a2", created_at=t0 + timedelta(seconds=2)))
    assert [r.id for r in store.list()] == ["c", "b", "a", "a2"]
    assert [r.id for r in store.list(status="waiting")] == ["b", "a", "a2"]
    assert [r.id for r in store.list(status=WorkflowStatus.FINISHED)] == ["c"]
    assert [r.id for r in store.list(workflow="Order", status="waiting")] == ["a", "a2"]
    assert [r.id for r in store.list(limit=2)] == ["c", "b"]
    assert store.list(workflow="Nope") == []
    with pytest.raises(ValueError, match="unknown status 'bogus'"):
        store.list(status="bogus")


# -- compare-and-set ---------------------------------------------------------------------------


def test_update_is_compare_and_set_on_the_version(store: Store) -> None:
    created = store.create(rec("a", created_at=NOW))
    changed = dataclasses.replace(
        created, data='{"n": 2}', status=WorkflowStatus.RESUMING, wake_at=NOW, error="e"
    )
    second = store.update(changed, expected_version=1)
    assert (second.version, second.data, second.status, second.wake_at, second.error) == (
        2,
        '{"n": 2}',
        "resuming",
        NOW,
        "e",
    )
    assert second.created_at == NOW and second.updated_at is not None
    assert store.get("a") == second

    with pytest.raises(ConflictError, match=r"'a'.*expected version 1, found version 2"):
        store.update(dataclasses.replace(created, data='{"lost": 1}'), expected_version=1)
    assert store.get("a") == second


def test_update_never_changes_identity_or_lease(store: Store) -> None:
    store.create(rec("a"))
    claimed = store.claim("a", "w", LEASE, NOW)
    forged = dataclasses.replace(claimed, workflow="Other", lease_owner=None, lease_expires=None)
    stored = store.update(dataclasses.replace(forged, fence=99), expected_version=1)
    assert (stored.workflow, stored.lease_owner, stored.fence) == ("Order", "w", 1)


def test_update_returns_exactly_what_get_reads_back(store: Store) -> None:
    plus5 = timezone(timedelta(hours=5))
    store.create(rec("a", created_at=NOW - timedelta(days=1), wake_at=NOW))
    held = store.claim("a", "w", LEASE, NOW)
    # The caller's copy may be stale or forged; the stored identity and lease still come back.
    stale = dataclasses.replace(
        held, workflow="Other", created_at=NOW, fence=7, lease_owner=None, lease_expires=None
    )
    writes: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({}, dict(wake_at=datetime(2030, 6, 1, 17, 30, 0, 123456, tzinfo=plus5), error="e")),
        ({"fence": held.fence}, dict(data='{"n": 2}', status="resuming", wake_at=None)),
        ({"fence": held.fence, "release": True}, dict(status="finished", error=None)),
        ({}, dict(data="[]", state='{"s": 1}', wake_at=NOW + timedelta(microseconds=1))),
    ]
    for version, (flags, changes) in enumerate(writes, start=1):
        got = store.update(dataclasses.replace(stale, **changes), expected_version=version, **flags)
        assert got == store.get("a"), (flags, changes)
        assert got.version == version + 1 and got.workflow == "Order"
        for name in ("wake_at", "lease_expires", "created_at", "updated_at"):
            value = getattr(got, name)
            assert value is None or value.tzinfo is UTC, name


def test_every_write_of_the_stores_own_copy_returns_what_get_reads_back(store: Store) -> None:
    # The copy a store returned is exact: a write may build its result from it (SQLite does).
    created = store.create(rec("a", created_at=NOW - timedelta(days=1)))
    got = store.update(dataclasses.replace(created, data='{"n": 1}'), expected_version=1)
    assert got == store.get("a") and got.version == 2
    held = store.claim("a", "w", LEASE, NOW)
    got = store.update(
        dataclasses.replace(held, data='{"n": 2}'), expected_version=2, fence=held.fence
    )
    assert got == store.get("a") and (got.lease_owner, got.fence) == ("w", held.fence)
    got = store.update(
        dataclasses.replace(got, status="waiting"),
        expected_version=3,
        fence=held.fence,
        release=True,
    )
    assert got == store.get("a") and (got.lease_owner, got.lease_expires) == (None, None)
    got = store.update_free(
        dataclasses.replace(got, data='{"n": 3}'),
        expected_version=4,
        now=NOW,
        owner="v",
        lease=LEASE,
    )
    assert got == store.get("a") and (got.lease_owner, got.fence) == ("v", held.fence + 1)
    got = store.update(got, expected_version=5, fence=got.fence, release=True)
    got = store.update_free(dataclasses.replace(got, data='{"n": 4}'), expected_version=6, now=NOW)
    assert got == store.get("a") and (got.version, got.lease_owner) == (7, None)


def test_with_changes_copies_without_validating() -> None:
    base = rec("a", wake_at=NOW)
    changed = with_changes(base, data='{"n": 2}', version=3, lease_owner="w", lease_expires=NOW)
    assert changed == dataclasses.replace(
        base, data='{"n": 2}', version=3, lease_owner="w", lease_expires=NOW
    )
    assert base.data == '{"n": 1}' and base.version == 0
    assert with_changes(base, status="done").status == "done"  # trusted: no check at all
    with pytest.raises(TypeError, match=r"no field.*colour"):
        with_changes(base, colour="red")


def test_records_validate_their_fields() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        rec("a", wake_at=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="unknown status 'done'"):
        rec("a", status="done")
    with pytest.raises(ValueError, match="together"):
        rec("a", lease_owner="w")
    with pytest.raises(ValueError, match="non-empty"):
        rec("")


def test_datetimes_round_trip_as_aware_utc(store: Store) -> None:
    plus5 = timezone(timedelta(hours=5))
    wake = datetime(2030, 6, 1, 17, 30, 0, 123456, tzinfo=plus5)
    created = store.create(rec("a", wake_at=wake, created_at=wake - timedelta(days=1)))
    for got in (created, store.get("a")):
        assert got.wake_at == wake and got.wake_at is not None
        assert got.wake_at.tzinfo is UTC and got.wake_at.hour == 12
        assert got.wake_at.microsecond == 123456
        assert got.created_at is not None and got.created_at.tzinfo is UTC


# -- claiming due work -------------------------------------------------------------------------


def test_claim_due_takes_only_due_unleased_live_work_in_wake_order(store: Store) -> None:
    store.create(rec("late", wake_at=NOW - timedelta(minutes=1)))
    store.create(rec("later", wake_at=NOW - timedelta(minutes=3)))
    store.create(rec("exactly-now", wake_at=NOW))
    store.create(rec("future", wake_at=NOW + timedelta(seconds=1)))
    store.create(rec("asleep"))  # waiting, no wake-up: only a callback moves it
    store.create(rec("done", status="finished"))  # ended, nothing left to retry
    # An ended instance with a wake-up still has a teardown to retry: it is claimable.
    store.create(rec("teardown", status="finished", wake_at=NOW - timedelta(minutes=2)))
    store.create(rec("held", wake_at=NOW - timedelta(hours=1), lease_owner="x", lease_expires=NOW))

    claimed = store.claim_due(NOW, "w1", LEASE, limit=10)
    assert [r.id for r in claimed] == ["later", "teardown", "late", "exactly-now"]
    for r in claimed:
        assert (r.lease_owner, r.lease_expires, r.fence, r.version) == ("w1", NOW + LEASE, 1, 1)
        assert store.get(r.id) == r
    assert store.claim_due(NOW, "w2", LEASE, limit=10) == []


def test_count_due_counts_wake_ups_at_or_before_now(store: Store) -> None:
    store.create(rec("late", wake_at=NOW - timedelta(minutes=1)))
    store.create(rec("exactly-now", wake_at=NOW))
    store.create(rec("future", wake_at=NOW + timedelta(seconds=1)))
    store.create(rec("asleep"))
    assert store.count_due(NOW) == 2
    assert store.count_due(NOW + timedelta(hours=1)) == 3


def test_count_instances_counts_each_type_and_status(store: Store) -> None:
    assert store.count_instances() == {}
    store.create(rec("a"))
    store.create(rec("b"))
    store.create(rec("c", status="finished"))
    store.create(rec("d", workflow="Refund", status="failed"))
    store.create(rec("e", workflow="Refund", status="failed"))
    assert store.count_instances() == {
        ("Order", "waiting"): 2,
        ("Order", "finished"): 1,
        ("Refund", "failed"): 2,
    }
    # A status change moves the instance from one count to the other.
    current = store.get("a")
    store.update(with_changes(current, status="finished"), expected_version=current.version)
    counts = store.count_instances()
    assert (counts[("Order", "waiting")], counts[("Order", "finished")]) == (1, 2)
    # The counts are the listing's, whatever the store.
    listed: dict[tuple[str, str], int] = {}
    for r in store.list():
        listed[(r.workflow, r.status)] = listed.get((r.workflow, r.status), 0) + 1
    assert store.count_instances() == listed


def test_claim_due_respects_the_limit(store: Store) -> None:
    for i in range(5):
        store.create(rec(f"r{i}", wake_at=NOW - timedelta(minutes=10 - i)))
    assert [r.id for r in store.claim_due(NOW, "w", LEASE, 2)] == ["r0", "r1"]
    assert [r.id for r in store.claim_due(NOW, "w", LEASE, 2)] == ["r2", "r3"]
    assert [r.id for r in store.claim_due(NOW, "w", LEASE, 2)] == ["r4"]
    with pytest.raises(ValueError, match="limit"):
        store.claim_due(NOW, "w", LEASE, 0)
    with pytest.raises(ValueError, match="owner"):
        store.claim_due(NOW, "", LEASE, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.claim_due(datetime(2030, 1, 1), "w", LEASE, 1)


def test_resuming_work_left_by_a_crash_is_claimable(store: Store) -> None:
    store.create(rec("fresh", status="resuming"))
    store.create(rec("crashed", status="resuming", lease_owner="dead", lease_expires=NOW))
    store.create(rec("due", wake_at=NOW - timedelta(seconds=1)))
    claimed = store.claim_due(NOW + timedelta(seconds=1), "w", LEASE, 10)
    by_id = {r.id: r for r in claimed}
    assert [r.id for r in claimed][-1] == "due"  # no wake-up time: crash leftovers come first
    assert set(by_id) == {"fresh", "crashed", "due"}
    assert (by_id["fresh"].fence, by_id["crashed"].fence) == (1, 2)


def test_an_expired_lease_lets_another_owner_reclaim(store: Store) -> None:
    store.create(rec("a", wake_at=NOW))
    (first,) = store.claim_due(NOW, "w1", LEASE, 10)
    assert store.claim_due(NOW + LEASE, "w2", LEASE, 10) == []  # still live at its expiry
    (second,) = store.claim_due(NOW + LEASE + timedelta(seconds=1), "w2", LEASE, 10)
    assert (second.lease_owner, second.fence) == ("w2", first.fence + 1)


def test_a_creator_can_hold_a_new_record_from_birth(store: Store) -> None:
    born = store.create(rec("a", status="resuming", lease_owner="starter", lease_expires=NOW))
    assert born.fence == 1
    assert store.claim_due(NOW, "w", LEASE, 10) == []
    assert store.update(born, expected_version=1, fence=1).version == 2


# -- fencing -----------------------------------------------------------------------------------


def test_a_worker_whose_lease_was_taken_over_cannot_commit(store: Store) -> None:
    store.create(rec("a", wake_at=NOW))
    (old,) = store.claim_due(NOW, "w1", LEASE, 10)
    (new,) = store.claim_due(NOW + timedelta(minutes=5), "w2", LEASE, 10)
    before = store.get("a")

    late = dataclasses.replace(old, data='{"stale": true}', status="finished")
    with pytest.raises(ConflictError, match=r"'a'.*fence 1 is no longer held.*'w2'"):
        store.update(late, expected_version=old.version, fence=old.fence)
    assert store.get("a") == before
    assert store.release("a", "w1", old.fence) is False
    with pytest.raises(ConflictError):
        store.renew("a", "w1", old.fence, LEASE, NOW)

    done = store.update(dataclasses.replace(new, status="finished"), expected_version=1, fence=2)
    assert (done.version, done.status, done.lease_owner) == (2, "finished", "w2")


def test_a_released_lease_cannot_be_written_with(store: Store) -> None:
    store.create(rec("a"))
    held = store.claim("a", "w", LEASE, NOW)
    assert store.release("a", "w", held.fence) is True
    with pytest.raises(ConflictError, match="released"):
        store.update(held, expected_version=1, fence=held.fence)
    assert store.get("a").version == 1


def test_release_drops_only_the_matching_lease_and_keeps_the_version(store: Store) -> None:
    store.create(rec("a", wake_at=NOW))
    (held,) = store.claim_due(NOW, "w", LEASE, 10)
    assert store.release("a", "w", held.fence + 1) is False
    assert store.release("a", "other", held.fence) is False
    assert store.get("a").lease_owner == "w"
    assert store.release("a", "w", held.fence) is True
    after = store.get("a")
    assert (after.lease_owner, after.lease_expires, after.version, after.fence) == (
        None,
        None,
        1,
        1,
    )
    assert [r.fence for r in store.claim_due(NOW, "w2", LEASE, 10)] == [2]


def test_update_with_release_writes_and_drops_the_lease_in_one_step(store: Store) -> None:
    store.create(rec("a", wake_at=NOW))
    (held,) = store.claim_due(NOW, "w", LEASE, 10)
    done = store.update(
        dataclasses.replace(held, status="finished", wake_at=None),
        expected_version=1,
        fence=held.fence,
        release=True,
    )
    assert (done.status, done.version, done.lease_owner, done.lease_expires) == (
        "finished",
        2,
        None,
        None,
    )
    assert store.get("a") == done
    # The lease is gone: a late write with the old fence is refused and changes nothing.
    with pytest.raises(ConflictError):
        store.update(dataclasses.replace(done, data='{"late": true}'), expected_version=2, fence=1)
    assert store.get("a") == done


def test_claim_one_record(store: Store) -> None:
    store.create(rec("a", status="finished"))
    held = store.claim("a", "w1", LEASE, NOW)
    assert (held.lease_owner, held.fence) == ("w1", 1)
    with pytest.raises(ConflictError, match="'a' is leased by 'w1'"):
        store.claim("a", "w2", LEASE, NOW + timedelta(seconds=5))
    assert store.get("a") == held
    assert store.claim("a", "w1", LEASE, NOW).fence == 2  # an owner may re-claim its own
    taken = store.claim("a", "w2", LEASE, NOW + LEASE + timedelta(seconds=1))
    assert (taken.lease_owner, taken.fence) == ("w2", 3)


def test_renew_extends_a_held_lease(store: Store) -> None:
    store.create(rec("a"))
    held = store.claim("a", "w", LEASE, NOW)
    renewed = store.renew("a", "w", held.fence, LEASE, NOW + timedelta(seconds=20))
    assert (renewed.lease_expires, renewed.fence) == (NOW + timedelta(seconds=50), held.fence)
    assert store.claim_due(NOW + timedelta(seconds=40), "w2", LEASE, 10) == []


# -- optimistic writes (update_free) -----------------------------------------------------------


def test_update_free_writes_an_unleased_record_and_leaves_it_unleased(store: Store) -> None:
    created = store.create(rec("a", created_at=NOW))
    changes: dict[str, Any] = dict(data='{"n": 2}', status="finished", wake_at=NOW, error="e")
    stored = store.update_free(dataclasses.replace(created, **changes), expected_version=1, now=NOW)
    assert (stored.version, stored.data, stored.status, stored.wake_at, stored.error) == (
        2,
        '{"n": 2}',
        "finished",
        NOW,
        "e",
    )
    assert (stored.lease_owner, stored.lease_expires, stored.fence) == (None, None, 0)
    assert stored.created_at == NOW and store.get("a") == stored


def test_update_free_with_an_owner_takes_the_lease_in_the_same_write(store: Store) -> None:
    created = store.create(rec("a"))
    mine = dataclasses.replace(created, data='{"n": 2}')
    held = store.update_free(mine, expected_version=1, now=NOW, owner="w", lease=LEASE)
    assert (held.version, held.data, held.lease_owner, held.lease_expires, held.fence) == (
        2,
        '{"n": 2}',
        "w",
        NOW + LEASE,
        1,
    )
    assert store.get("a") == held
    with pytest.raises(ConflictError, match="'a' is leased by 'w'"):
        store.claim("a", "w2", LEASE, NOW + LEASE / 2)
    done = store.update(held, expected_version=2, fence=held.fence, release=True)
    assert (done.version, done.lease_owner) == (3, None)


def test_update_free_is_refused_while_a_lease_is_live(store: Store) -> None:
    store.create(rec("a"))
    held = store.claim("a", "w1", LEASE, NOW)
    late = dataclasses.replace(held, data='{"sneaky": true}', status="finished")
    attempts: list[tuple[datetime, dict[str, Any]]] = [
        (NOW, {}),
        (NOW + LEASE, {}),  # live up to and including its expiry
        (NOW, {"owner": "w2", "lease": LEASE}),
        (NOW, {"owner": "w1", "lease": LEASE}),  # even for the holder: use update(fence=...)
    ]
    for now, claim in attempts:
        with pytest.raises(ConflictError, match=r"'a' is leased by 'w1' until .*version 1 refused"):
            store.update_free(late, expected_version=1, now=now, **claim)
    assert store.get("a") == held  # data, version, fence and lease all unchanged


def test_update_free_clears_a_lapsed_lease_or_takes_it_over(store: Store) -> None:
    store.create(rec("a"))
    held = store.claim("a", "w1", LEASE, NOW)
    later = NOW + LEASE + timedelta(microseconds=1)
    freed = store.update_free(
        dataclasses.replace(held, data='{"n": 2}'), expected_version=1, now=later
    )
    assert (freed.version, freed.lease_owner, freed.lease_expires, freed.fence) == (
        2,
        None,
        None,
        1,
    )
    assert store.get("a") == freed
    with pytest.raises(ConflictError, match="no longer held"):  # the lapsed holder is fenced off
        store.update(held, expected_version=2, fence=held.fence)

    store.claim("a", "w2", LEASE, NOW)
    taken = store.update_free(freed, expected_version=2, now=later, owner="w3", lease=LEASE)
    assert (taken.version, taken.lease_owner, taken.lease_expires, taken.fence) == (
        3,
        "w3",
        later + LEASE,
        3,
    )
    assert store.get("a") == taken


def test_update_free_is_compare_and_set_on_the_version(store: Store) -> None:
    created = store.create(rec("a"))
    second = store.update(dataclasses.replace(created, data='{"n": 2}'), expected_version=1)
    lost = dataclasses.replace(created, data='{"lost": 1}')
    with pytest.raises(ConflictError, match=r"'a'.*expected version 1, found version 2"):
        store.update_free(lost, expected_version=1, now=NOW)
    with pytest.raises(ConflictError, match=r"expected version 1, found version 2"):
        store.update_free(lost, expected_version=1, now=NOW, owner="w", lease=LEASE)
    assert store.get("a") == second


def test_update_free_checks_its_arguments_before_writing(store: Store) -> None:
    created = store.create(rec("a"))
    bad: list[tuple[str, dict[str, Any]]] = [
        ("timezone-aware", {"now": datetime(2030, 1, 1)}),
        ("needs a lease", {"now": NOW, "owner": "w"}),
        ("positive", {"now": NOW, "owner": "w", "lease": timedelta(0)}),
        ("owner", {"now": NOW, "owner": "", "lease": LEASE}),
        ("needs an owner", {"now": NOW, "lease": LEASE}),
    ]
    for message, args in bad:
        with pytest.raises(ValueError, match=message):
            store.update_free(created, expected_version=1, **args)
    assert store.get("a") == created


def test_two_optimistic_writers_of_one_version_one_wins(store: Store) -> None:
    created = store.create(rec("a"))
    start = threading.Barrier(4)
    won: list[str] = []
    lost: list[str] = []

    def write(n: int) -> None:
        mine = dataclasses.replace(created, data=f'{{"writer": {n}}}')
        start.wait()
        try:
            store.update_free(mine, expected_version=1, now=NOW, owner=f"w{n}", lease=LEASE)
            won.append(f"w{n}")
        except ConflictError as exc:
            lost.append(str(exc))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (winner,) = won
    assert len(lost) == 3  # by version or by the winner's lease, depending on the timing
    final = store.get("a")
    assert (final.version, final.lease_owner, final.fence) == (2, winner, 1)
    assert final.data == f'{{"writer": {winner[1:]}}}'


# -- concurrency -------------------------------------------------------------------------------


def _drain(store: Store, owner: str, limit: int = 3) -> list[str]:
    got: list[str] = []
    while batch := store.claim_due(NOW, owner, timedelta(hours=1), limit):
        got.extend(r.id for r in batch)
    return got


def test_concurrent_claimers_in_threads_claim_each_record_once(store: Store) -> None:
    ids = [f"r{i:03}" for i in range(60)]
    for i, id_ in enumerate(ids):
        store.create(rec(id_, wake_at=NOW - timedelta(seconds=i)))
    results: dict[str, list[str]] = {}
    start = threading.Barrier(4)

    def work(owner: str) -> None:
        start.wait()
        results[owner] = _drain(store, owner)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [id_ for got in results.values() for id_ in got]
    assert sorted(claimed) == ids
    assert {r.fence for r in store.list()} == {1}


def _claim_in_process(url: str, owner: str) -> list[str]:
    with open_store(url) as store:
        return _drain(store, owner, limit=2)


def test_concurrent_claimers_in_processes_claim_each_record_once(durable_url: str) -> None:
    ids = [f"r{i:03}" for i in range(80)]
    with open_store(durable_url) as store:
        for id_ in ids:
            store.create(rec(id_, wake_at=NOW))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.starmap(_claim_in_process, [(durable_url, f"p{n}") for n in range(3)])
    claimed = [id_ for got in results for id_ in got]
    assert sorted(claimed) == ids
    with open_store(durable_url) as store:
        assert {(r.fence, r.lease_owner in {"p0", "p1", "p2"}) for r in store.list()} == {(1, True)}


# -- durability, registry, URLs ----------------------------------------------------------------


def test_records_and_targets_survive_reopening(durable_url: str) -> None:
    with open_store(durable_url) as store:
        created = store.create(rec("a", wake_at=NOW))
        store.set_target("Order", "shop/flows.py:Order")
    with open_store(durable_url) as store:
        assert store.get("a") == created
        assert store.get_target("Order") == "shop/flows.py:Order"


def test_target_registry(store: Store) -> None:
    assert store.get_target("Order") is None
    assert store.targets() == {}
    store.set_target("Order", "flows.py:Order")
    store.set_target("Order", "shop.flows:Order")
    store.set_target("Refund", "shop.flows:Refund")
    assert store.get_target("Order") == "shop.flows:Order"
    assert store.targets() == {"Order": "shop.flows:Order", "Refund": "shop.flows:Refund"}


def test_open_store_schemes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_URL == "sqlite:///stmtflow.db"
    assert isinstance(open_store("memory://"), MemoryStore)
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///rel/../flows.db") as s:
        assert isinstance(s, SQLiteStore)
    assert (tmp_path / "flows.db").exists()
    with open_store("sqlite:///:memory:") as s:
        assert s.create(rec("a")).version == 1


@pytest.mark.parametrize(
    "url",
    ["mysql://u:secret@db/x", "sqlite://host/x.db", "sqlite:///", "memory://x", "stmtflow.db", ""],
)
def test_bad_urls_name_the_url_and_the_supported_schemes(url: str) -> None:
    with pytest.raises(ValueError, match="supported: memory://") as info:
        open_store(url)
    assert "secret" not in str(info.value)
    assert repr(url.replace("secret", "***")) in str(info.value)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE stmtflow_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StmtflowError, match="schema version 99"):
        SQLiteStore(str(path))


def test_sqlite_older_than_3_35_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.34.1")
    with pytest.raises(StmtflowError, match=r"needs SQLite 3\.35\.0 or later .* uses 3\.34\.1"):
        SQLiteStore(str(tmp_path / "s.db"))
    assert not (tmp_path / "s.db").exists()


def _spy_on_connections(monkeypatch: pytest.MonkeyPatch) -> list[sqlite3.Connection]:
    """Every connection `sqlite3.connect` opens from now on (until the patch is undone)."""
    opened: list[sqlite3.Connection] = []
    connect = sqlite3.connect

    def spy(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(sqlite3, "connect", spy)
    return opened


def test_sqlite_is_wal_and_every_connection_fully_synchronous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Durability: every connection the store opens (one per thread) fsyncs each commit.
    opened = _spy_on_connections(monkeypatch)
    path = tmp_path / "s.db"
    with SQLiteStore(str(path)) as store:
        store.create(rec("a"))
        used, checked = threading.Event(), threading.Event()

        def work() -> None:  # a second thread, alive (its connection open) until checked
            store.get("a")
            used.set()
            checked.wait(10)

        worker = threading.Thread(target=work)
        worker.start()
        used.wait(10)
        assert len(opened) == 2
        assert [tuple(c.execute("PRAGMA synchronous").fetchone()) for c in opened] == [(2,)] * 2
        checked.set()
        worker.join()
    monkeypatch.undo()
    with sqlite3.connect(path) as other:  # the journal mode is the file's
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _closed(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False


def test_sqlite_closes_the_connections_of_ended_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = _spy_on_connections(monkeypatch)
    with SQLiteStore(str(tmp_path / "s.db")) as store:
        for n in range(5):
            thread = threading.Thread(target=store.set_target, args=(f"W{n}", "t"))
            thread.start()
            thread.join()
        assert len(store.targets()) == 5
        assert len(opened) == 6  # this thread's and one per thread
        assert not _closed(opened[0])
        assert sum(map(_closed, opened[1:])) >= 4  # at most one not yet collected
    assert all(map(_closed, opened))


def _use_after_fork(store: SQLiteStore) -> None:
    try:
        store.create(rec("child"))
        parent = store.get("parent")
        store.update(dataclasses.replace(parent, data='{"by": "child"}'), expected_version=1)
    except BaseException:
        os._exit(3)
    os._exit(0)


def test_sqlite_a_forked_child_and_its_parent_both_go_on_using_the_store(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(str(path)) as store:
        store.create(rec("parent"))  # the parent's connection is open when it forks
        child = multiprocessing.get_context("fork").Process(target=_use_after_fork, args=(store,))
        child.start()
        child.join(30)
        assert child.exitcode == 0
        assert sorted(r.id for r in store.list()) == ["child", "parent"]
        parent = store.get("parent")
        assert (parent.version, parent.data) == (2, '{"by": "child"}')
        store.update(dataclasses.replace(parent, data='{"by": "parent"}'), expected_version=2)
    with sqlite3.connect(path) as other:
        row = other.execute("SELECT data, version FROM stmtflow_instances WHERE id = 'parent'")
        assert row.fetchone() == ('{"by": "parent"}', 3)


@pytest.mark.parametrize("state_size", [10, 20_000], ids=["whole", "in-parts"])
def test_sqlite_a_row_written_by_another_connection_refuses_a_stale_write(
    tmp_path: Path, state_size: int
) -> None:
    # Compare-and-set holds against any writer of the file, not only this store object: the
    # version another process wrote wins, and what it wrote stays.
    state = '{"threads":[' + ",".join(['{"id":"t","x":"' + "y" * 300 + '"}'] * (state_size // 310))
    state += '],"pc":1}'
    path = tmp_path / "s.db"
    with SQLiteStore(str(path)) as store:
        created = store.create(rec("a", status="resuming", wake_at=NOW, state=state))
        with sqlite3.connect(path) as other:
            other.execute(
                "UPDATE stmtflow_instances SET status = 'failed', wake_at = NULL, "
                "version = version + 1"
            )
        with pytest.raises(ConflictError, match="expected version 1, found version 2"):
            store.update(dataclasses.replace(created, data='{"n": 2}'), expected_version=1)
        current = store.get("a")
        assert (current.status, current.wake_at, current.data) == ("failed", None, '{"n": 1}')
        assert current.state == state
        got = store.update(dataclasses.replace(current, data='{"n": 3}'), expected_version=2)
        assert got == store.get("a")
        assert (got.status, got.version, got.data, got.state) == ("failed", 3, '{"n": 3}', state)


def test_sqlite_a_write_stores_the_status_it_carries_whatever_the_row_held(
    tmp_path: Path,
) -> None:
    # A step's write leaves status and wake-up time out of SET when the stored ones equal the
    # new ones; when they do not (here changed by another connection at the same version),
    # the write still ends up storing what it carries.
    path = tmp_path / "s.db"
    with SQLiteStore(str(path)) as store:
        created = store.create(rec("a", status="resuming", wake_at=NOW))
        got = store.update(dataclasses.replace(created, data='{"n": 2}'), expected_version=1)
        with sqlite3.connect(path) as other:
            other.execute("UPDATE stmtflow_instances SET status = 'failed', wake_at = NULL")
        got = store.update(dataclasses.replace(got, data='{"n": 3}'), expected_version=2)
        assert got == store.get("a")
        assert (got.status, got.wake_at, got.data) == ("resuming", NOW, '{"n": 3}')
        later = NOW + LEASE
        got = store.update(
            dataclasses.replace(got, status="waiting", wake_at=later), expected_version=3
        )
        assert got == store.get("a")
        assert (got.status, got.wake_at, got.version) == ("waiting", later, 4)


def test_unreachable_postgres_is_one_clear_error() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StmtflowError, match=r"cannot use PostgreSQL at postgresql://u:\*\*\*@"):
        open_store("postgresql://u:pw@127.0.0.1:1/test?connect_timeout=2")


@pytest.mark.postgres
def test_postgres_schema_parameter_isolates_stores(pg_schema_factory: Callable[[], str]) -> None:
    first, second = pg_schema_factory(), pg_schema_factory()
    with open_store(first) as a, open_store(second.replace("postgresql", "postgres", 1)) as b:
        a.create(rec("x"))
        assert b.list() == []
        assert [r.id for r in a.list()] == ["x"]

"""Fencing: a worker whose lease lapsed and was taken over cannot commit, on every store.

The lease keeps other workers away while it is live; the fencing token (+1 on every claim)
decides who may write. A worker that stalls past its lease (a long step, a GC pause, a network
partition) and is taken over finds every later write refused with `ConflictError`, even when
the new holder has not written yet (same version: only the fence tells them apart), and the
record keeps exactly what the new holder made of it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import stmtflow as sf
from stmtflow.errors import ConflictError
from stmtflow.runtime import Engine
from stmtflow.stores import MemoryStore, Record, Store, open_store

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=1)


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
    ]
)
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Worker A's and worker B's view of one store (separate connections where durable)."""
    if request.param == "memory":
        shared = MemoryStore()
        yield shared, shared
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fencing.db'}"
    elif request.param == "redis":
        url = str(request.getfixturevalue("redis_url"))
    elif request.param == "nats":
        url = str(request.getfixturevalue("nats_url"))
    else:
        url = str(request.getfixturevalue("pg_url"))
    with open_store(url) as a, open_store(url) as b:
        yield a, b


def new_record(id: str) -> Record:
    return Record(id=id, workflow="Transfer", data='{"n": 0}', state="{}", status="waiting")


# -- the store refuses the stale holder --------------------------------------------------------


def test_taken_over_holder_cannot_write_renew_or_release(two_stores: tuple[Store, Store]) -> None:
    a_store, b_store = two_stores
    a_store.create(new_record("r"))
    a = a_store.claim("r", "A", LEASE, T0)
    a_write = a_store.update(
        dataclasses.replace(a, data='{"n": 1}'), expected_version=1, fence=a.fence
    )
    with pytest.raises(ConflictError, match="leased by 'A'"):
        b_store.claim("r", "B", LEASE, T0 + LEASE / 2)  # A's lease is live: B keeps away

    b = b_store.claim("r", "B", LEASE, T0 + 2 * LEASE)  # A's lease lapsed: B takes over
    assert b.fence == a.fence + 1 and b.version == a_write.version == 2
    # B has not written: the version A read is still current, and only the fence refuses A.
    stale = dataclasses.replace(a_write, data='{"n": 2}')
    with pytest.raises(ConflictError, match=f"fence {a.fence} is no longer held"):
        a_store.update(stale, expected_version=2, fence=a.fence)
    with pytest.raises(ConflictError):
        a_store.renew("r", "A", a.fence, LEASE, T0 + 2 * LEASE)
    assert a_store.release("r", "A", a.fence) is False
    assert b_store.get("r") == b, "nothing A tried changed the record"

    mine = b_store.update(
        dataclasses.replace(b, data='{"n": 20}'), expected_version=2, fence=b.fence
    )
    with pytest.raises(ConflictError):
        a_store.update(stale, expected_version=3, fence=a.fence)
    assert a_store.get("r") == mine and mine.data == '{"n": 20}' and mine.lease_owner == "B"


def test_a_lapsed_lease_nobody_took_over_still_commits(two_stores: tuple[Store, Store]) -> None:
    a_store, b_store = two_stores
    a_store.create(new_record("r"))
    a = a_store.claim("r", "A", LEASE, T0)
    # Long after the lease: the clock alone refuses nothing, the fence decides.
    late = a_store.update(
        dataclasses.replace(a, data='{"n": 1}'), expected_version=1, fence=a.fence
    )
    assert late.version == 2 and b_store.get("r").data == '{"n": 1}'


@pytest.mark.parametrize("takes_lease", [True, False], ids=["claiming", "unleased"])
def test_an_optimistic_write_waits_out_a_live_lease_and_fences_off_a_lapsed_one(
    two_stores: tuple[Store, Store], takes_lease: bool
) -> None:
    a_store, b_store = two_stores
    a_store.create(new_record("r"))
    a = a_store.claim("r", "A", LEASE, T0)
    claim: dict[str, Any] = {"owner": "B", "lease": LEASE} if takes_lease else {}
    b_read = b_store.get("r")  # B reads without a lease and works in memory
    b_work = dataclasses.replace(b_read, data='{"n": 5}')
    with pytest.raises(ConflictError, match="leased by 'A'"):
        b_store.update_free(b_work, expected_version=1, now=T0 + LEASE / 2, **claim)
    assert a_store.get("r") == a, "the refused write changed nothing"

    b = b_store.update_free(b_work, expected_version=1, now=T0 + 2 * LEASE, **claim)
    assert (b.version, b.lease_owner, b.fence) == (
        (2, "B", a.fence + 1) if takes_lease else (2, None, a.fence)
    )
    # A wakes up: its write is refused (B's bumped the version), so is a renewal or a release.
    with pytest.raises(ConflictError, match="expected version 1, found version 2"):
        a_store.update(dataclasses.replace(a, data='{"n": 1}'), expected_version=1, fence=a.fence)
    with pytest.raises(ConflictError, match=f"fence {a.fence} is no longer held"):
        a_store.update(dataclasses.replace(b, data='{"n": 1}'), expected_version=2, fence=a.fence)
    with pytest.raises(ConflictError):
        a_store.renew("r", "A", a.fence, LEASE, T0 + 2 * LEASE)
    assert a_store.release("r", "A", a.fence) is False
    assert a_store.get("r") == b and b.data == '{"n": 5}'


# -- end to end: an engine's unit stalls inside a step past its lease -----------------------------


class Gate:
    """Blocks the step of the thread named ``stalled`` until released; records every call."""

    def __init__(self) -> None:
        self.stalled = ""
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[tuple[str, str, str]] = []

    def pass_through(self) -> None:
        info = sf.current_step()
        who = threading.current_thread().name
        self.calls.append((info.workflow_id, info.key, who))
        if who == self.stalled:
            self.entered.set()
            assert self.release.wait(20), "the test never released the stalled step"


GATE = Gate()


class Transfer(sf.WorkflowState):
    """Two steps; ``by`` records which thread completed ``move``."""

    by: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("move", self.move), sf.Step("after", GATE.pass_through))

    def move(self) -> None:
        GATE.pass_through()
        self.by.append(threading.current_thread().name)


@pytest.fixture
def gate() -> Iterator[Gate]:
    global GATE
    GATE = Gate()
    yield GATE
    GATE.release.set()


def engines(two_stores: tuple[Store, Store], lease_a: timedelta) -> tuple[Engine, Engine]:
    a = Engine(two_stores[0], workflows=[Transfer], owner="A", lease=lease_a)
    b = Engine(two_stores[1], workflows=[Transfer], owner="B", lease=timedelta(seconds=30))
    return a, b


def in_thread(name: str, fn: object) -> tuple[threading.Thread, list[BaseException]]:
    """Run ``fn()`` in a thread called ``name``; what it raised lands in the returned list."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread, raised


def wait_until_lapsed(store: Store, id: str) -> None:
    rec = store.get(id)
    assert rec.lease_expires is not None
    while datetime.now(UTC) <= rec.lease_expires:
        time.sleep(0.01)


def test_a_stalled_step_cannot_checkpoint_once_another_worker_claimed(
    two_stores: tuple[Store, Store], gate: Gate
) -> None:
    engine_a, engine_b = engines(two_stores, lease_a=timedelta(seconds=0.2))
    gate.stalled = "worker-A"
    thread, raised = in_thread("worker-A", lambda: engine_a.start(Transfer, id="t"))
    assert gate.entered.wait(10)
    wait_until_lapsed(two_stores[1], "t")
    claimed = two_stores[1].claim("t", "B", timedelta(seconds=30))  # B claims, writes nothing
    gate.release.set()
    thread.join(10)

    (error,) = raised
    assert isinstance(error, ConflictError) and "no longer held" in str(error)
    assert two_stores[1].get("t") == claimed, "A's checkpoint left no trace"
    # Version 1: before the action only a move was pending (recomputed identically, so not
    # written first); the step's own checkpoint was refused.
    assert claimed.version == 1 and claimed.lease_owner == "B"

    # B's work stands: it runs the step again (same key: at least once) and finishes.
    two_stores[1].release("t", "B", claimed.fence)
    engine_b.tick()
    done = engine_b.get("t")
    assert done.status is sf.WorkflowStatus.FINISHED and done.data.by == ["MainThread"]  # type: ignore[attr-defined]
    moves = [key for _, key, _ in gate.calls[:2]]
    assert [who for *_, who in gate.calls] == ["worker-A", "MainThread", "MainThread"]
    assert moves[0] == moves[1]


def test_a_stalled_step_cannot_overwrite_a_takeover_that_finished(
    two_stores: tuple[Store, Store], gate: Gate
) -> None:
    engine_a, engine_b = engines(two_stores, lease_a=timedelta(seconds=0.2))
    gate.stalled = "worker-A"
    thread, raised = in_thread("worker-A", lambda: engine_a.start(Transfer, id="t"))
    assert gate.entered.wait(10)
    wait_until_lapsed(two_stores[1], "t")
    assert engine_b.tick() >= 1  # B claims the crashed-looking work and finishes it
    finished = two_stores[1].get("t")
    assert finished.status == "finished" and finished.lease_owner is None
    gate.release.set()
    thread.join(10)

    (error,) = raised
    assert isinstance(error, ConflictError)
    assert two_stores[0].get("t") == finished, "B's finished record is untouched"
    assert engine_a.get("t").data.by == ["MainThread"]  # type: ignore[attr-defined]


def test_a_batch_record_taken_over_before_its_turn_runs_no_step(
    two_stores: tuple[Store, Store], gate: Gate
) -> None:
    """A worker claims a batch and works it in turn; records taken over meanwhile are skipped."""
    engine_a, engine_b = engines(two_stores, lease_a=timedelta(seconds=0.3))
    ids = ["b0", "b1", "b2"]
    for id in ids:  # left ``resuming`` with no lease, as a crashed worker leaves them
        state = sf.new_state(id, "Transfer")
        two_stores[0].create(
            Record(id=id, workflow="Transfer", data="{}", state=state.model_dump_json())
        )
    gate.stalled = "worker-A"
    thread, _ = in_thread("worker-A", engine_a.tick)  # claims all three, stalls in b0's step
    assert gate.entered.wait(10)
    for id in ids:
        wait_until_lapsed(two_stores[1], id)
    engine_b.tick()  # takes all three over and finishes them
    gate.release.set()
    thread.join(10)

    runs = [(id, who) for id, _, who in gate.calls]
    # b0's step was in flight when its lease lapsed: it ran twice (at least once). b1 and b2
    # were still waiting their turn in A's batch: A found them taken over and ran nothing.
    assert runs.count(("b0", "worker-A")) == 1
    assert [id for id, who in runs if who == "worker-A"] == ["b0"]
    for id in ids:
        rec = two_stores[0].get(id)
        assert rec.status == "finished" and rec.lease_owner is None


class Handoff(sf.WorkflowState):
    """Waits for ``go``, runs ``move`` (the gate), then waits for ``more``."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Wait("start", sf.OnEvent("go", lambda: None)),
            sf.Step("move", GATE.pass_through),
            sf.Wait("next", sf.OnEvent("more", lambda: None)),
        )


def test_two_units_of_one_engine_exclude_each_other(
    two_stores: tuple[Store, Store], gate: Gate
) -> None:
    """One engine, one owner name, two threads sending to one instance: the second waits."""
    engine = Engine(two_stores[0], workflows=[Handoff], lease=timedelta(seconds=30))
    engine.start(Handoff, id="h")
    gate.stalled = "first"
    first, first_raised = in_thread("first", lambda: engine.send("h", "go"))
    assert gate.entered.wait(10)
    second, second_raised = in_thread("second", lambda: engine.send("h", "go"))
    time.sleep(0.3)
    assert second.is_alive(), "the second send waits for the first one's lease"
    gate.release.set()
    first.join(10)
    second.join(20)

    assert first_raised == []
    assert [type(e) for e in second_raised] == [sf.UnknownCallback]  # "go" was consumed
    assert [who for *_, who in gate.calls] == ["first"], "move ran once"
    done = engine.get("h")
    assert done.state.threads[0].cur_step == "next" and done.state.status.value == "waiting"

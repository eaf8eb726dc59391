"""Faults on the Redis store: a worker killed mid-run, and the Redis server itself killed.

1. Two worker processes (two threads each) race on 500 `flows.Relay` instances on the shared
   test server, with a sender delivering ``pong`` to each; one worker is SIGKILLed mid-run and
   the other finishes everything once its leases lapse. Every instance finishes once with every
   effect in its data (no lost update), and only a step the killed process was running when it
   died ran twice.
2. A private ``redis-server`` (its own port and directory; never the shared one) with
   ``appendonly yes`` and ``appendfsync always`` is SIGKILLed while two workers run
   `flows.Crunch` instances and this process keeps writing records of its own, then restarted
   on the same directory: every write any client saw acknowledged is still there, and the
   workers carry on and finish every instance.

The step log is an SQLite file beside the test (`flows.StepLog`).
"""

from __future__ import annotations

import importlib
import itertools
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_server import PrivateRedis

from stmtflow import WorkflowStatus, load_state
from stmtflow.runtime import Engine
from stmtflow.stores import Record, open_store

WORKERS = Path(__file__).resolve().parent / "workers"
if str(WORKERS) not in sys.path:
    sys.path.insert(0, str(WORKERS))
flows: Any = importlib.import_module("flows")
procs: Any = importlib.import_module("procs")

pytestmark = [pytest.mark.redis, pytest.mark.slow]

INSTANCES = 500
NAPS = (0.0, 0.05, 0.1, 0.2, 0.4)
LEASE = "2"  # seconds: how soon the killed worker's instances are taken over


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Any]:
    started = procs.Procs(tmp_path, f"sqlite:///{tmp_path / 'steps.db'}")
    yield started
    started.cleanup()


def in_flight_at_death(runs: list[Any], killed: int) -> set[int]:
    """The log rows (seq) each thread of the killed process wrote last: its step in flight."""
    last: dict[tuple[int, str], int] = {}
    for run in runs:
        last[(run.pid, run.thread)] = run.seq
    return {seq for (pid, _), seq in last.items() if pid == killed}


def test_a_worker_killed_among_racing_workers_and_sends_loses_nothing(
    redis_url: str, launcher: Any, tmp_path: Path
) -> None:
    engine = Engine(redis_url, workflows=flows.WORKFLOWS)
    log = flows.StepLog(f"sqlite:///{tmp_path / 'steps.db'}")
    log.create()
    store = engine.store
    ids = [f"relay-{n:03}" for n in range(INSTANCES)]

    began = time.monotonic()
    worker = ["worker.py", redis_url, "--lease", LEASE, "--concurrency", "2"]
    victim, survivor = launcher.launch(*worker), launcher.launch(*worker)
    sender = launcher.launch("sender.py", redis_url, *ids, "--timeout", "150")
    for id in ids:
        engine.start(flows.Relay, {"nap": NAPS[int(id[-3:]) % len(NAPS)]}, id=id)
    launcher.wait_for("the victim's executions", lambda: log.count(victim) >= 300, 90, victim)
    launcher.kill(victim)

    def finished() -> bool:
        return len(store.list(status="finished")) == INSTANCES

    launcher.wait_for("every instance to finish", finished, 150, survivor)
    elapsed = time.monotonic() - began
    sent = launcher.result(sender, 30)
    stats = launcher.stop(survivor)

    assert sent["undelivered"] == [] and sent["errors"] == []
    assert len(sent["outputs"]) + sent["recovered"] == INSTANCES
    assert sent["outputs"] == {id: f"ack pong-{id}" for id in ids if id in sent["outputs"]}

    runs = log.runs()
    by_execution: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for run in runs:
        by_execution[(run.instance, run.key)].append(run)
    in_flight = in_flight_at_death(runs, victim)
    repeated = {k: v for k, v in by_execution.items() if len(v) > 1}
    for (instance, key), group in repeated.items():
        for earlier in group[:-1]:
            assert earlier.seq in in_flight, f"{instance} {key} ran twice: {group}"
        assert all(x.pid != y.pid for x, y in itertools.pairwise(group))
    assert len(repeated) <= 2, "at most one step in flight per thread of the killed worker"

    records = store.list()
    assert sorted(r.id for r in records) == ids
    for rec in records:
        state = load_state(rec.state)
        wf = flows.Relay.model_validate_json(rec.data)
        assert (rec.status, state.status) == ("finished", WorkflowStatus.FINISHED)
        assert rec.error is None
        assert sorted(wf.log) == sorted(flows.RELAY_STEPS) and wf.log[-1] == "last"
        assert wf.reply == f"pong-{rec.id}"
    steps = Counter((run.instance, run.step) for run in runs)
    assert set(steps) == {(id, step) for id in ids for step in flows.RELAY_STEPS}
    by_pid = Counter(run.pid for run in runs)
    engine.close()
    log.close()
    print(
        f"\nredis kill: {INSTANCES} instances, {len(runs)} step executions, repeated after "
        f"SIGKILL: {len(repeated)}; all finished in {elapsed:.1f}s; steps by process "
        f"{dict(by_pid)}; sender: {len(sent['outputs'])} delivered (+{sent['recovered']} "
        f"recovered), {sent['conflicts']} conflicts; survivor: {stats}"
    )


# -- the server killed and restarted -----------------------------------------------------------


class Writer(threading.Thread):
    """Keeps compare-and-set writing records of its own; notes every acknowledged version."""

    def __init__(self, url: str, count: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.count = count
        self.acked: dict[str, int] = {}
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with open_store(self.url) as store:
            for n in range(self.count):
                store.create(Record(id=f"ack-{n}", workflow="Ack", data="0", state="{}"))
                self.acked[f"ack-{n}"] = 1
            for n in itertools.cycle(range(self.count)):
                if self.stop.is_set():
                    return
                id = f"ack-{n}"
                try:
                    current = store.get(id)
                    changed = Record(id=id, workflow="Ack", data=str(current.version), state="{}")
                    written = store.update(changed, expected_version=current.version)
                except Exception:  # the server is down: retry once it is back
                    self.failures += 1
                    time.sleep(0.02)
                    continue
                self.acked[id] = written.version


def test_a_redis_server_killed_and_restarted_loses_nothing_committed(
    private_redis: PrivateRedis, launcher: Any, tmp_path: Path
) -> None:
    url = f"{private_redis.url}?prefix=restart"
    engine = Engine(url, workflows=flows.WORKFLOWS)
    log = flows.StepLog(f"sqlite:///{tmp_path / 'steps.db'}")
    log.create()
    ids = [f"crunch-{n:02}" for n in range(40)]
    for id in ids:
        engine.start(flows.Crunch, {"steps": 8}, id=id)
    writer = Writer(url, 20)
    writer.start()
    worker = ["worker.py", url, "--lease", LEASE, "--concurrency", "2"]
    workers = [launcher.launch(*worker) for _ in range(2)]

    def working() -> bool:  # both workers are up (connected) and some work is done
        return log.count() >= 60 and all(log.count(pid) > 0 for pid in workers)

    launcher.wait_for("both workers' executions", working, 60, *workers)

    seen = {r.id: r for r in engine.store.list()}  # read after an fsync: committed
    acked = dict(writer.acked)
    private_redis.kill()
    time.sleep(0.5)  # the workers and the writer fail meanwhile, and keep trying
    private_redis.start()

    with open_store(url) as store:
        for id, version in acked.items():
            assert store.get(id).version >= version, f"{id}: an acknowledged write was lost"
        for id, before in seen.items():
            after = store.get(id)
            assert after.version >= before.version, f"{id}: a committed checkpoint was lost"
            if before.workflow == "Crunch":
                kept = flows.Crunch.model_validate_json(before.data).done
                done = flows.Crunch.model_validate_json(after.data).done
                assert done[: len(kept)] == kept, f"{id}: a committed step was lost"

    def finished() -> bool:
        return len(engine.store.list(status="finished", workflow="Crunch")) == len(ids)

    launcher.wait_for("every instance to finish", finished, 120, *workers)
    writer.stop.set()
    writer.join(10)
    final = {id: engine.store.get(id).version for id in writer.acked}
    assert all(final[id] >= version for id, version in writer.acked.items())
    stats = [launcher.stop(pid) for pid in workers]

    runs = log.runs()
    keys: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        if run.step == "work":
            keys[run.instance].add(run.key)
    for id in ids:
        rec = engine.store.get(id)
        wf = flows.Crunch.model_validate_json(rec.data)
        assert rec.status == "finished" and wf.finished and len(wf.done) == 8 == len(set(wf.done))
        assert set(wf.done) <= keys[id], f"{id}: data holds a step the log never saw"
    engine.close()
    log.close()
    print(
        f"\nredis restart: {len(ids)} instances, {len(runs)} step executions "
        f"({len(runs) - 9 * len(ids)} re-run after the outage); writer: "
        f"{sum(writer.acked.values())} acknowledged versions kept, {writer.failures} failed "
        f"tries while down; workers: {[{k: s[k] for k in ('processed', 'failed')} for s in stats]}"
    )

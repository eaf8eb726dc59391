"""Concurrency: several worker processes and a sender share PostgreSQL; nothing lost or doubled.

Two worker processes (two threads each) fire the timers of 500 `flows.Relay` instances while a
third process delivers a ``pong`` callback to each as soon as it waits for one, and this process
keeps creating instances: timers, callbacks and claims race on the same records. No process
dies, so no step may run twice; every instance must finish with every step's effect and the
callback's input in its data (a lost update would drop one of them).
"""

from __future__ import annotations

import importlib
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stmtflow import WorkflowStatus, load_state
from stmtflow.runtime import Engine

WORKERS = Path(__file__).resolve().parent / "workers"
if str(WORKERS) not in sys.path:
    sys.path.insert(0, str(WORKERS))
flows: Any = importlib.import_module("flows")
procs: Any = importlib.import_module("procs")

INSTANCES = 500
WORKER_PROCESSES = 2
NAPS = (0.0, 0.05, 0.1, 0.2, 0.4)  # the side thread's timer, spread around the callback

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def launcher(tmp_path: Path, pg_url: str) -> Iterator[Any]:
    started = procs.Procs(tmp_path, pg_url)
    yield started
    started.cleanup()


def test_workers_and_a_sender_race_on_500_instances_without_loss_or_double_runs(
    pg_url: str, launcher: Any
) -> None:
    engine = Engine(pg_url, workflows=flows.WORKFLOWS)
    log = flows.StepLog(pg_url)
    log.create()
    store = engine.store
    ids = [f"relay-{n:03}" for n in range(INSTANCES)]

    began = time.monotonic()
    workers = [
        launcher.launch("worker.py", pg_url, "--lease", "5", "--concurrency", "2")
        for _ in range(WORKER_PROCESSES)
    ]
    sender = launcher.launch("sender.py", pg_url, *ids, "--timeout", "150")
    for id in ids:  # arms the first zero timer; workers and the sender are already racing
        engine.start(flows.Relay, {"nap": NAPS[int(id[-3:]) % len(NAPS)]}, id=id)
    created = time.monotonic() - began

    def finished() -> bool:
        return len(store.list(status="finished")) == INSTANCES

    launcher.wait_for("every instance to finish", finished, 150, *workers)
    elapsed = time.monotonic() - began
    sent = launcher.result(sender, 30)
    stats = [launcher.stop(pid) for pid in workers]

    # Every callback delivered exactly once, with the handler's output returned to the sender.
    assert sent["undelivered"] == [] and sent["errors"] == []
    assert sent["outputs"] == {id: f"ack pong-{id}" for id in ids if id in sent["outputs"]}, (
        "each send returned its own handler output"
    )
    assert len(sent["outputs"]) + sent["recovered"] == INSTANCES

    # No step ran twice; each instance ran each of its steps once, by key and by name.
    runs = log.runs()
    per_execution = Counter((run.instance, run.key) for run in runs)
    doubled = {k: n for k, n in per_execution.items() if n > 1}
    assert doubled == {}, f"steps ran twice without a crash: {sorted(doubled)[:10]}"
    steps: dict[str, list[str]] = defaultdict(list)
    for run in runs:
        steps[run.instance].append(run.step)
    assert {id: sorted(names) for id, names in steps.items()} == {
        id: sorted(flows.RELAY_STEPS) for id in ids
    }

    # Every instance finished once, with every effect in its data: no lost update.
    records = store.list()
    assert sorted(r.id for r in records) == ids
    for rec in records:
        state = load_state(rec.state)
        wf = flows.Relay.model_validate_json(rec.data)
        assert (rec.status, state.status) == ("finished", WorkflowStatus.FINISHED)
        assert rec.lease_owner is None and rec.error is None, rec
        assert sorted(wf.log) == sorted(flows.RELAY_STEPS) and wf.log[-1] == "last"
        assert wf.reply == f"pong-{rec.id}"

    by_pid = Counter(run.pid for run in runs)
    assert all(by_pid[pid] > 0 for pid in workers), f"a worker did no work: {by_pid}"
    engine.close()
    log.close()
    print(
        f"\nconcurrency: {INSTANCES} instances, {len(runs)} step executions, 0 doubled; "
        f"created in {created:.1f}s, all finished in {elapsed:.1f}s; steps by process "
        f"{dict(by_pid)}; sender: {len(sent['outputs'])} delivered "
        f"(+{sent['recovered']} recovered), {sent['attempts']} attempts, "
        f"{sent['not_ready']} not ready yet, {sent['conflicts']} conflicts; "
        f"workers: {[{k: s[k] for k in ('processed', 'fired', 'failed')} for s in stats]}"
    )

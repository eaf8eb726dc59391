"""Faults on the NATS store: two workers race on 500 instances, one is SIGKILLed mid-run.

Two worker processes (two threads each) fire the timers of 500 `flows.Relay` instances while a
third process delivers a ``pong`` callback to each as soon as it waits for one, and this process
keeps creating instances: timers, callbacks and claims race on the same records in one JetStream
KV bucket. Once worker A has run a good part of the work it is killed with SIGKILL (in the
middle of whatever it was doing: a step, a record write, an index write, or between); worker B
takes over A's instances when their leases lapse and finishes everything.

Every instance must finish once, with every step's effect and the callback's input in its data
(a lost update would drop one), and the only step executions that ran twice are ones A was in
the middle of when it died (its last logged execution on each of its threads). The step log is
an SQLite file (`flows.StepLog`), committed by each step before its checkpoint.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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
NAPS = (0.0, 0.05, 0.1, 0.2, 0.4)  # the side thread's timer, spread around the callback
LEASE = "2"  # seconds: how soon the dead worker's instances are taken over
KILL_AFTER = 400  # worker A's logged step executions before it is killed (of 2 000 in all)

pytestmark = [pytest.mark.nats, pytest.mark.slow]


@pytest.fixture
def steplog_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'steps.db'}"


@pytest.fixture
def launcher(tmp_path: Path, steplog_url: str) -> Iterator[Any]:
    started = procs.Procs(tmp_path, steplog_url)
    yield started
    started.cleanup()


def test_a_worker_killed_mid_run_loses_nothing_and_reruns_only_its_steps_in_flight(
    nats_url: str, steplog_url: str, launcher: Any
) -> None:
    engine = Engine(nats_url, workflows=flows.WORKFLOWS)
    log = flows.StepLog(steplog_url)
    log.create()
    store = engine.store
    ids = [f"relay-{n:03}" for n in range(INSTANCES)]

    began = time.monotonic()
    worker = ["worker.py", nats_url, "--lease", LEASE, "--concurrency", "2"]
    a, b = launcher.launch(*worker), launcher.launch(*worker)
    sender = launcher.launch("sender.py", nats_url, *ids, "--timeout", "240")
    for id in ids:  # arms the first zero timer; workers and the sender are already racing
        engine.start(flows.Relay, {"nap": NAPS[int(id[-3:]) % len(NAPS)]}, id=id)
    created = time.monotonic() - began

    launcher.wait_for("worker A's executions", lambda: log.count(a) >= KILL_AFTER, 120, a, b)
    launcher.kill(a)
    killed_at = time.monotonic() - began

    def finished() -> bool:
        return len(store.list(status="finished")) == INSTANCES

    launcher.wait_for("every instance to finish", finished, 240, b)
    elapsed = time.monotonic() - began
    sent = launcher.result(sender, 60)
    survivor = launcher.stop(b)

    # Every callback delivered exactly once, each send returning its own handler's output.
    assert sent["undelivered"] == [] and sent["errors"] == []
    assert sent["outputs"] == {id: f"ack pong-{id}" for id in ids if id in sent["outputs"]}
    assert len(sent["outputs"]) + sent["recovered"] == INSTANCES

    # Only a step A was running when it died ran again (by B or the sender), with the same key.
    runs = log.runs()
    by_execution: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for run in runs:
        by_execution[(run.instance, run.key)].append(run)
    last_of_a: dict[str, int] = {}
    for run in runs:
        if run.pid == a:
            last_of_a[run.thread] = run.seq
    in_flight = set(last_of_a.values())
    repeated = {k: v for k, v in by_execution.items() if len(v) > 1}
    for (instance, key), group in repeated.items():
        assert len(group) == 2, f"{instance} {key} ran {len(group)} times: {group}"
        assert group[0].seq in in_flight and group[1].pid != a, f"{instance} {key}: {group}"
    assert len(repeated) <= 2, "at most one step in flight per thread of the killed worker"
    steps: dict[str, list[str]] = defaultdict(list)
    for (instance, _), group in by_execution.items():
        steps[instance].append(group[0].step)
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
        assert rec.error is None, rec
        # Released, or held by A if it died between its last write and its release.
        assert rec.lease_owner in (None, f"worker:{a}"), rec
        assert not rec.lease_live(datetime.now(UTC))
        assert sorted(wf.log) == sorted(flows.RELAY_STEPS) and wf.log[-1] == "last"
        assert wf.reply == f"pong-{rec.id}"
    assert store.count_due(datetime.now(UTC)) == 0
    assert store.claim_due(datetime.now(UTC), "check", timedelta(seconds=1), 10) == []

    by_pid = Counter(run.pid for run in runs)
    assert by_pid[a] >= KILL_AFTER and by_pid[b] > 0, by_pid
    engine.close()
    log.close()
    print(
        f"\nnats faults: {INSTANCES} instances, {len(runs)} step executions "
        f"({len(by_execution)} distinct), A killed after {by_pid[a]} at {killed_at:.1f}s; "
        f"repeated after SIGKILL: {len(repeated)} "
        f"({sorted(g[0].step for g in repeated.values())}); created in {created:.1f}s, all "
        f"finished in {elapsed:.1f}s; sender: {len(sent['outputs'])} delivered "
        f"(+{sent['recovered']} recovered), {sent['attempts']} attempts, "
        f"{sent['conflicts']} conflicts; B: {survivor}"
    )

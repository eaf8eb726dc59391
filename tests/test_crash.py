"""Crash: a worker process killed with SIGKILL loses nothing; only its steps in flight run twice.

Real processes on a real store (an SQLite file, and PostgreSQL): worker A dies inside steps
whose effect happened and whose checkpoint did not (its steps hang after logging, then it is
killed); worker B is killed at an arbitrary moment (mid-step, mid-checkpoint or between);
worker C takes over once their leases lapse and finishes everything. The step log
(`flows.StepLog`, committed by each action before its checkpoint) shows every execution that
began, so the test can tell exactly which steps ran twice and why.
"""

from __future__ import annotations

import importlib
import itertools
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
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

INSTANCES = 24
STEPS = 8  # ``work`` executions per instance, then one ``finish``
LEASE = "1.5"  # seconds: how soon a dead worker's instances can be taken over
HANG_AFTER = 40  # worker A's 40th step execution (and any later one) never returns


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(store URL, step log URL) for each backend; PostgreSQL uses one fresh schema for both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flows.db'}", f"sqlite:///{tmp_path / 'steps.db'}"
    url = str(request.getfixturevalue("pg_url"))
    return url, url


@pytest.fixture
def launcher(tmp_path: Path, urls: tuple[str, str]) -> Iterator[Any]:
    started = procs.Procs(tmp_path, urls[1])
    yield started
    started.cleanup()


def in_flight_at_death(runs: list[Any], killed: set[int]) -> set[int]:
    """The log rows (seq) each thread of a killed process wrote last: its step in flight."""
    last: dict[tuple[int, str], int] = {}
    for run in runs:
        last[(run.pid, run.thread)] = run.seq
    return {seq for (pid, _), seq in last.items() if pid in killed}


@pytest.mark.slow
def test_sigkill_loses_nothing_and_reruns_only_the_steps_in_flight(
    urls: tuple[str, str], launcher: Any, tmp_path: Path
) -> None:
    store_url, log_url = urls
    engine = Engine(store_url, workflows=flows.WORKFLOWS)
    log = flows.StepLog(log_url)
    log.create()
    ids = [f"crunch-{n:02}" for n in range(INSTANCES)]
    for id in ids:
        engine.start(flows.Crunch, {"steps": STEPS}, id=id)
    assert log.count() == 0, "start() only arms the zero timer: the workers run every step"
    store = engine.store

    def finished() -> bool:
        return len(store.list(status="finished")) == INSTANCES

    began = time.monotonic()
    worker = ["worker.py", store_url, "--lease", LEASE, "--concurrency", "2"]
    # A: dies in the middle of steps (logged, not checkpointed) on both of its threads.
    a = launcher.launch(*worker, env={flows.HANG_ENV: str(HANG_AFTER)})
    launcher.wait_for("worker A's executions", lambda: log.count(a) >= HANG_AFTER, 60, a)
    time.sleep(0.3)  # its other thread reaches a step too; well within the lease
    launcher.kill(a)
    killed_a = time.monotonic()
    # B: takes over A's instances once their leases lapse (re-running A's steps in flight) ...
    b = launcher.launch(*worker)
    stuck = [(run.instance, run.key) for run in log.runs() if run.hung]

    def rerun() -> bool:
        again = {(run.instance, run.key) for run in log.runs() if run.pid == b}
        return all(execution in again for execution in stuck)

    launcher.wait_for("A's steps in flight to run again", rerun, 30, b)
    recovery = time.monotonic() - killed_a
    # ... and is killed at whatever it is doing once it has done some work.
    launcher.wait_for("worker B's executions", lambda: log.count(b) >= 60, 60, b)
    launcher.kill(b)
    assert not finished(), "the workload should outlast two crashes; make it longer"
    # C: takes over when the dead workers' leases lapse, and finishes everything.
    c = launcher.launch(*worker)
    launcher.wait_for("every instance to finish", finished, 90, c)
    elapsed = time.monotonic() - began
    summary = launcher.stop(c)

    runs = log.runs()
    by_execution: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for run in runs:
        by_execution[(run.instance, run.key)].append(run)
    in_flight = in_flight_at_death(runs, {a, b})
    repeated = {k: v for k, v in by_execution.items() if len(v) > 1}

    # Only a step a killed process was running can have run again, with the same key, by
    # another process; every step A was stuck in must have run again.
    for (instance, key), group in repeated.items():
        for earlier in group[:-1]:
            assert earlier.seq in in_flight, f"{instance} {key} ran twice: {group}"
        assert all(x.pid != y.pid for x, y in itertools.pairwise(group))
        assert len({run.step for run in group}) == 1
    hung = [run for run in runs if run.hung]
    assert hung and all(pid == a for pid in {run.pid for run in hung})
    for run in hung:
        # It ran again; a third run happens when B was killed running it too (each earlier
        # run was in flight in a killed process: checked above).
        assert len(by_execution[(run.instance, run.key)]) >= 2, f"{run} did not run again"
    assert len(repeated) <= 2 * 2, "at most one step in flight per thread of each killed worker"
    # A key belongs to one step execution of one instance.
    owners: dict[str, set[str]] = defaultdict(set)
    for instance, key in by_execution:
        owners[key].add(instance)
    assert all(len(v) == 1 for v in owners.values())

    # Every record is there, loads, validates and finished with exactly its logged work.
    records = store.list()
    assert sorted(r.id for r in records) == ids
    for rec in records:
        state = load_state(rec.state)
        wf = flows.Crunch.model_validate_json(rec.data)
        assert (rec.status, state.status) == ("finished", WorkflowStatus.FINISHED)
        assert rec.error is None
        # Released, or held by a dead worker killed between its last write and its release:
        # such a lease just lapses (a finished record is never claimed again).
        assert rec.lease_owner in (None, f"worker:{a}", f"worker:{b}"), rec
        assert not rec.lease_live(datetime.now(UTC))
        assert wf.finished and len(wf.done) == STEPS == len(set(wf.done))
        logged = {k for (i, k), g in by_execution.items() if i == rec.id and g[0].step == "work"}
        assert set(wf.done) == logged, f"{rec.id}: data and step log disagree"
        finishes = [
            k for (i, k), g in by_execution.items() if i == rec.id and g[0].step == "finish"
        ]
        assert len(finishes) == 1
    assert len(by_execution) == INSTANCES * (STEPS + 1)
    if store_url.startswith("sqlite"):
        for name in ("flows.db", "steps.db"):
            with sqlite3.connect(tmp_path / name) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    engine.close()
    log.close()
    print(
        f"\ncrash[{store_url.split(':')[0]}]: {INSTANCES} instances, {len(runs)} step executions "
        f"({len(by_execution)} distinct), A ran {log_count(runs, a)} and hung on {len(hung)}, "
        f"B ran {log_count(runs, b)}, C ran {log_count(runs, c)}; repeated after SIGKILL: "
        f"{len(repeated)} ({sorted(g[0].step for g in repeated.values())}); "
        f"A's steps re-run {recovery:.2f}s after SIGKILL (lease {LEASE}s); "
        f"{elapsed:.1f}s in all; C: {summary}"
    )


def log_count(runs: list[Any], pid: int) -> int:
    return sum(1 for run in runs if run.pid == pid)


UNWIND_INSTANCES = 4
UNWIND_STEPS = 5  # per instance: 5 books, 1 pay (fails), 5 compensations = 11 executions
UNWIND_HANG = 11 + 8  # worker A hangs in the second instance's second compensation


@pytest.mark.slow
def test_sigkill_mid_unwinding_runs_every_compensation_once_but_the_one_in_flight(
    urls: tuple[str, str], launcher: Any
) -> None:
    store_url, log_url = urls
    engine = Engine(store_url, workflows=flows.WORKFLOWS)
    log = flows.StepLog(log_url)
    log.create()
    ids = [f"unwind-{n}" for n in range(UNWIND_INSTANCES)]
    for id in ids:
        engine.start(flows.Unwind, {"steps": UNWIND_STEPS}, id=id)
    store = engine.store

    worker = ["worker.py", store_url, "--lease", LEASE, "--concurrency", "1"]
    a = launcher.launch(*worker, env={flows.HANG_ENV: str(UNWIND_HANG)})
    launcher.wait_for("worker A to hang mid-unwinding", lambda: log.count(a) >= UNWIND_HANG, 60, a)
    [hung] = [run for run in log.runs() if run.hung]
    assert hung.step == "book.compensate", "A must die while compensating"
    compensating = store.get(hung.instance)
    assert compensating.status == "compensating"
    launcher.kill(a)
    b = launcher.launch(*worker)

    def failed() -> bool:
        return len(store.list(status="failed")) == UNWIND_INSTANCES

    launcher.wait_for("every instance to fail, compensated", failed, 60, b)
    launcher.stop(b)

    runs = log.runs()
    by_execution: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for run in runs:
        by_execution[(run.instance, run.key)].append(run)
    repeated = {k: v for k, v in by_execution.items() if len(v) > 1}
    # Only the compensation A died in ran twice, with the same key, the second time by B.
    assert list(repeated) == [(hung.instance, hung.key)]
    first, second = repeated[(hung.instance, hung.key)]
    assert (first.pid, second.pid) == (a, b) and first.step == second.step == "book.compensate"
    for rec in store.list():
        wf = flows.Unwind.model_validate_json(rec.data)
        state = load_state(rec.state)
        assert state.status is WorkflowStatus.FAILED and "card declined" in (state.error or "")
        comps = [
            k
            for (i, k), g in by_execution.items()
            if i == rec.id and g[0].step == "book.compensate"
        ]
        assert len(comps) == UNWIND_STEPS == len(wf.booked)
        # each booking undone once, latest first, with its own key
        assert wf.undone == [k.replace("/book/", "/book.compensate/") for k in reversed(wf.booked)]
        assert [c.error for c in state.compensated] == [None] * UNWIND_STEPS
        assert state.unwinding == [] and state.saga == []
    engine.close()
    log.close()

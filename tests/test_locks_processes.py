"""Two worker processes on a server store (PostgreSQL, Redis, NATS) run many instances of one
`Lock`: the body never runs in more than ``limit`` instances at once, and a holder whose
worker is SIGKILLed mid-body is finished by the other worker (after its lease lapses), which
then lets the waiters in.

Every step of the body logs itself (committed) as it begins, in one table (in the test's
PostgreSQL schema, or a SQLite file beside the other stores): ``enter`` and ``exit`` bracket an
instance's time in the body, so replaying the log in order gives how many instances were
inside at every moment.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_urls import SERVER_STORES, store_url

from stmtflow.runtime import Engine

WORKERS = Path(__file__).resolve().parent / "workers"
if str(WORKERS) not in sys.path:
    sys.path.insert(0, str(WORKERS))
flows: Any = importlib.import_module("flows")
procs: Any = importlib.import_module("procs")

pytestmark = pytest.mark.slow


@pytest.fixture(params=SERVER_STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store the workers share."""
    return store_url(request, tmp_path, request.param, "")


@pytest.fixture
def log_url(url: str, tmp_path: Path) -> str:
    """Where the step log lives: the PostgreSQL store's own schema, else a SQLite file."""
    return url if url.startswith("postgresql") else f"sqlite:///{tmp_path / 'steps.db'}"


@pytest.fixture
def launcher(tmp_path: Path, log_url: str) -> Iterator[Any]:
    started = procs.Procs(tmp_path, log_url)
    yield started
    started.cleanup()


def most_inside(runs: list[Any]) -> int:
    """The most instances between their ``enter`` and their ``exit`` at once, in log order."""
    inside: set[str] = set()
    most = 0
    for run in runs:
        if run.step == "enter":
            inside.add(run.instance)
        elif run.step == "exit":
            inside.discard(run.instance)
        most = max(most, len(inside))
    return most


def start_all(url: str, ids: list[str], slots: int) -> Engine:
    engine = Engine(url, workflows=flows.WORKFLOWS)
    for id in ids:
        engine.start(flows.Guarded, {"slots": slots}, id=id)
    return engine


def finished(engine: Engine, ids: list[str]) -> bool:
    return all(engine.store.get(id).status == "finished" for id in ids)


@pytest.mark.parametrize("slots", [1, 2])
def test_two_workers_never_run_the_body_more_than_limit_at_once(
    url: str, log_url: str, launcher: Any, slots: int
) -> None:
    engine = Engine(url, workflows=flows.WORKFLOWS)  # makes the schema the log goes in
    log = flows.StepLog(log_url)
    log.create()
    workers = [
        launcher.launch("worker.py", url, "--lease", "5", "--concurrency", "1") for _ in range(2)
    ]
    time.sleep(3)  # both workers up and polling before there is work: both take some
    ids = [f"g-{n}" for n in range(12)]
    for id in ids:
        engine.start(flows.Guarded, {"slots": slots}, id=id)
    launcher.wait_for("every instance to finish", lambda: finished(engine, ids), 120, *workers)
    stats = [launcher.stop(pid) for pid in workers]
    assert all(st["failed"] == 0 for st in stats), stats
    runs = log.runs()
    assert {r.instance for r in runs if r.step == "exit"} == set(ids)
    assert most_inside(runs) == slots  # never more, and the slots were used
    if slots > 1:  # a worker runs one body at a time: the other slot is the other worker's
        assert len({r.pid for r in runs}) == 2, "both workers ran bodies"
    engine.close()


def test_a_holder_killed_mid_body_is_finished_by_the_other_worker(
    url: str, log_url: str, launcher: Any
) -> None:
    ids = [f"k-{n}" for n in range(4)]
    engine = start_all(url, ids, 1)
    log = flows.StepLog(log_url)
    log.create()
    # Its second step (the holder's ``work``) blocks forever after logging itself.
    doomed = launcher.launch("worker.py", url, "--lease", "2", env={flows.HANG_ENV: "2"})
    launcher.wait_for("the doomed worker to hang", lambda: log.count(doomed) >= 2, 60, doomed)
    holder = log.runs()[-1].instance
    launcher.kill(doomed)
    other = launcher.launch("worker.py", url, "--lease", "2")
    launcher.wait_for("every instance to finish", lambda: finished(engine, ids), 120, other)
    launcher.stop(other)
    runs = log.runs()
    finisher = [r for r in runs if r.instance == holder and r.step == "exit"]
    assert [r.pid for r in finisher] == [launcher.proc(other).pid]
    assert most_inside(runs) == 1
    enters = [r.instance for r in runs if r.step == "enter"]
    assert enters[0] == holder and enters.index(holder) == 0
    assert set(enters) == set(ids)
    engine.close()

"""Two worker processes race on one schedule's fires while a backfill runs, on each server store
(PostgreSQL, Redis, NATS).

The schedule fires every minute and was created 90 minutes "ago" with a two-hour catch-up
window, so the workers find some 90 fires due at once and start them side by side, while this
process backfills the first hour of them. Every fire time must have exactly one instance (its
id derived from the schedule and the fire time), each of whose steps ran exactly once. The step
log is an SQLite file beside the test (`flows.StepLog`).
"""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from pathlib import Path
from typing import Any

import pytest
from store_urls import SERVER_STORES, store_url

from stmtflow.runtime import Engine
from stmtflow.runtime._schedules import fire_id

WORKERS = Path(__file__).resolve().parent / "workers"
if str(WORKERS) not in sys.path:
    sys.path.insert(0, str(WORKERS))
flows: Any = importlib.import_module("flows")
procs: Any = importlib.import_module("procs")

pytestmark = pytest.mark.slow


def _fire_time(id: str) -> datetime:
    return datetime.strptime(id.split("@")[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@pytest.fixture(params=SERVER_STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url(request, tmp_path, request.param, "unused.db")


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Any]:
    started = procs.Procs(tmp_path, f"sqlite:///{tmp_path / 'steps.db'}")
    yield started
    started.cleanup()


def test_two_workers_and_a_backfill_start_each_fire_exactly_once(
    url: str, launcher: Any, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    ago = now - timedelta(minutes=90)
    engine = Engine(url, workflows=flows.WORKFLOWS, clock=lambda: ago)
    log = flows.StepLog(f"sqlite:///{tmp_path / 'steps.db'}")
    log.create()
    ready = [tmp_path / f"ready-{n}" for n in range(2)]
    workers = [
        launcher.launch("worker.py", url, "--lease", "5", "--concurrency", "2", "--ready", str(r))
        for r in ready
    ]
    # Both serving before anything is due: each may take part in the race, and stop cleanly.
    launcher.wait_for("the workers to serve", lambda: all(r.exists() for r in ready), 60, *workers)
    s = engine.schedule(
        "minutely", "Report", "* * * * *", overlap="allow", catchup=timedelta(hours=2)
    )
    first = s.next_fire
    assert first is not None
    # The backfill's starts take leases: on the real clock, as the workers do.
    with Engine(url, workflows=flows.WORKFLOWS) as filler:
        backfilled = filler.backfill("minutely", first, first + timedelta(hours=1))
    assert len(backfilled) == 60

    due = list(takewhile(lambda t: t <= now, s.fire_times(first - timedelta(seconds=1))))
    expected = {fire_id("minutely", t) for t in due}

    def caught_up() -> bool:
        have = {r.id for r in engine.store.list(status="finished")}
        return expected <= have

    launcher.wait_for("every due fire to finish", caught_up, 120, *workers)
    stats = [launcher.stop(pid) for pid in workers]
    assert all(st["failed"] == 0 for st in stats), stats

    instances = {r.id for r in engine.store.list()}
    end = max(_fire_time(id) for id in instances)
    times = s.fire_times(first - timedelta(seconds=1))
    contiguous = [fire_id("minutely", t) for t in takewhile(lambda t: t <= end, times)]
    assert sorted(instances) == contiguous, "one instance per fire time, none missing"
    runs = Counter(r.instance for r in log.runs())
    assert set(runs) == instances and set(runs.values()) == {1}, "each step ran exactly once"
    engine.close()

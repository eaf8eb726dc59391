"""Crash with children: workers killed with SIGKILL (a) after a parent armed a `Call` (its child
stored, not yet run) and (b) after a child finished and before its parent moved on. Every parent
finishes with the right results, and no child is started twice or delivered twice.

Real processes on a real store (an SQLite file, PostgreSQL, Redis and NATS JetStream), as in
``test_crash.py`` (on Redis and NATS the step log is an SQLite file beside the test): worker
A hangs in the step of a child (so it dies with the parent's arming committed and the child's
step in flight), worker B hangs in a parent's ``result`` handler (so it dies with the child's
end committed and the parent not yet moved on), worker C finishes everything.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections import Counter
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

PARENTS = 6
CALLS = 4
LEASE = "1.5"


@pytest.fixture(params=["sqlite", *SERVER_STORES])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    steps = f"sqlite:///{tmp_path / 'steps.db'}"
    url = store_url(request, tmp_path, request.param, "flows.db")
    return url, url if request.param == "postgres" else steps


@pytest.fixture
def launcher(tmp_path: Path, urls: tuple[str, str]) -> Iterator[Any]:
    started = procs.Procs(tmp_path, urls[1])
    yield started
    started.cleanup()


@pytest.mark.slow
def test_sigkill_around_calls_loses_no_child_and_starts_none_twice(
    urls: tuple[str, str], launcher: Any
) -> None:
    store_url, log_url = urls
    engine = Engine(store_url, workflows=flows.WORKFLOWS)
    log = flows.StepLog(log_url)
    log.create()
    ids = [f"payer-{n}" for n in range(PARENTS)]
    for id in ids:
        engine.start(flows.Payer, {"calls": CALLS}, id=id)
    store = engine.store
    worker = ["worker.py", store_url, "--lease", LEASE, "--concurrency", "2"]

    def parents_done() -> int:
        return sum(1 for r in store.list(status="finished", workflow="Payer"))

    # (a) A hangs in its 3rd child step: that child's parent armed the call (committed) ...
    a = launcher.launch(*worker, env={flows.HANG_ENV: "3"})
    launcher.wait_for("worker A to hang in a child's step", lambda: log.count(a) >= 3, 60, a)
    time.sleep(0.3)
    launcher.kill(a)
    hung = {run.instance for run in log.runs() if run.hung}
    assert hung, "worker A should have died inside a child's step"
    # (b) B hangs in the 2nd result it delivers: that child's end is committed, its parent
    # has not moved on.
    b = launcher.launch(*worker, env={flows.HANG_RESULT_ENV: "2"})

    def b_took_over() -> bool:
        # Two steps run; or one, with its other thread hung in a result already (when B's two
        # threads first took two parents' results, the second hangs before any step of it).
        ran = log.count(b)
        return ran >= 2 or (ran >= 1 and any(store.inbox(id) for id in ids))

    launcher.wait_for("worker B to run the steps A left", b_took_over, 60, b)
    time.sleep(1.0)
    launcher.kill(b)
    assert parents_done() < PARENTS, "the workload should outlast two crashes"
    waiting = [id for id in ids if store.inbox(id)]
    assert waiting, "worker B should have died with a child's end not yet taken by its parent"
    # C: takes over when the leases lapse and finishes every parent.
    c = launcher.launch(*worker)
    launcher.wait_for("every parent to finish", lambda: parents_done() == PARENTS, 90, c)
    launcher.stop(c)

    expected = [n * 10 for n in range(CALLS)]
    for id in ids:
        parent = engine.get(id)
        assert parent.data.results == expected, id  # type: ignore[attr-defined]
        children = engine.children(id)
        assert len(children) == CALLS, id
        assert [c.id for c in children] == parent.data.children  # type: ignore[attr-defined]
        assert all(c.status.value == "finished" for c in children)
        assert store.inbox(id) == []
    # No child ran its step twice, but one a killed worker was running it in.
    runs = Counter(run.instance for run in log.runs())
    for child, count in runs.items():
        assert count == 1 or (count == 2 and child in hung), (child, count)
    assert len(runs) == PARENTS * CALLS

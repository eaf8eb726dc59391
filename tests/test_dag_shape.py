"""A DAG step's thread starts when its dependencies settled, so a run's work follows the DAG's
edges; a run stored while every step's thread started at once loads and goes on."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import stmtflow as sf
from stmtflow import dag
from stmtflow.testing import WorkflowHarness

FIXTURE = Path(__file__).parent / "snapshots" / "dag" / "running_legacy.json"
"""A run stored by the release that started every step's thread at once: ``a`` and ``c`` done,
``b`` waiting for its retry (10 s), ``d`` waiting at ``d.ready`` for ``b`` and ``c``."""


def handlers(log: list[str]) -> dict[str, Any]:
    def one(inputs: dict[str, Any]) -> int:
        log.append("one")
        return 1

    def flaky(inputs: dict[str, Any]) -> int:
        log.append("flaky")
        return inputs["a"] + 1

    def total(inputs: dict[str, Any]) -> int:
        log.append("sum")
        return inputs["b"] + inputs["c"]

    return {"one": one, "flaky": flaky, "sum": total}


def test_a_run_stored_with_every_thread_started_loads_and_goes_on() -> None:
    stored = json.loads(FIXTURE.read_text())
    log: list[str] = []
    cls = dag.load(stored["yaml"], handlers=handlers(log))
    state = sf.load_state(json.dumps(stored["state"]))
    assert "d.ready" in [t.cur_step for t in state.threads]
    h = WorkflowHarness(cls, data=stored["data"], state=state)
    assert h.data.queue is None  # the shape it was stored with
    assert not sf.check_compatibility(h.data.definition(), [h.state])
    h.advance(timedelta(seconds=10))
    assert log == ["flaky", "sum"]
    assert h.status is sf.WorkflowStatus.FINISHED
    assert h.data.outputs == {"a": 1, "b": 2, "c": 1, "d": 3}


CHAIN = "name: Chain\nsteps:\n" + "\n".join(
    ["  - {id: s0, handler: one}"]
    + [f"  - {{id: s{i}, handler: one, depends_on: [s{i - 1}]}}" for i in range(1, 30)]
)


def test_a_step_s_thread_starts_once_its_dependencies_settled() -> None:
    seen: list[list[str]] = []
    log: list[str] = []
    cls = dag.load(CHAIN, handlers=handlers(log))
    h = WorkflowHarness(cls)
    h.engine.on_checkpoint = lambda kind, wf, state: seen.append([t.id for t in state.threads])
    h.start()
    assert h.status is sf.WorkflowStatus.FINISHED and len(log) == 30
    # Never more than the main thread and the one step running.
    assert max(len(ids) for ids in seen) == 2
    assert h.data.queue == [f"s{i}" for i in range(30)] and h.data.started == 30
    assert h.data.open == []


def test_a_failure_skips_its_dependents_in_order_and_fails_the_run() -> None:
    def boom(inputs: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    cls = dag.load(
        """
        steps:
          - {id: a, handler: boom}
          - {id: b, handler: one, depends_on: [a]}
          - {id: c, handler: one, depends_on: [b]}
          - {id: x, handler: one}
        """,
        handlers={**handlers([]), "boom": boom},
    )
    h = WorkflowHarness(cls).start()
    assert h.status is sf.WorkflowStatus.FAILED
    assert h.data.failed == {
        "a": "RuntimeError: boom",
        "b": "skipped: 'a' failed",
        "c": "skipped: 'b' failed",
    }
    assert h.data.outputs == {"x": 1}
    assert h.data.queue == ["a", "x", "b", "c"]

"""The benchmark harness keeps running: ``python -m benchmarks --quick`` gives every workload.

This checks that each workload of issue 4 ran and produced numbers, never how fast: speed is
reported by the harness (docs/performance.md), not asserted here. It takes ten seconds or so,
so it is marked ``slow``: ``python -m pytest`` (the README's command, and CI's) runs it;
``python -m pytest -m "not slow"`` leaves it out while you work.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("W1", "W1b", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11")
DBOS = importlib.util.find_spec("dbos") is not None
"""DBOS is an optional extra (``bench-dbos``): W7's DBOS rows are skipped without it."""
POSTGRES_WORKLOADS = {"W5"}
"""Workloads whose every row needs PostgreSQL (others have PostgreSQL rows besides SQLite ones)."""


SIGNED = {
    "eager, library growth per extra statement",
    "eager, total growth per extra statement",
}
"""Rows that are differences of two measured figures (their sign is the noise's at smoke sizes)."""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"benchmarks failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(out.read_text())


def test_every_workload_reports_numbers(report: dict) -> None:
    pg_skipped = report["settings"]["postgresql_skipped"]
    if pg_skipped and os.environ.get("CI"):
        pytest.fail(f"PostgreSQL workloads were skipped under CI: {pg_skipped}")
    redis_skipped = report["settings"]["redis_skipped"]
    if redis_skipped and os.environ.get("CI"):
        pytest.fail(f"Redis rows were skipped under CI: {redis_skipped}")
    nats_skipped = report["settings"]["nats_skipped"]
    if nats_skipped and os.environ.get("CI"):
        pytest.fail(f"NATS rows were skipped under CI: {nats_skipped}")
    by_workload: dict[str, list[dict]] = {}
    for row in report["results"]:
        by_workload.setdefault(row["workload"], []).append(row)
    assert set(by_workload) == {*WORKLOADS, "machine"}
    # The machine's speed is sampled before each workload and at the end.
    (speed,) = by_workload["machine"]
    assert len(speed["samples"]) == len(WORKLOADS) + 1 and speed["value"] > 0
    for name in WORKLOADS:
        measured = [r for r in by_workload[name] if r["value"] is not None]
        if pg_skipped and name in POSTGRES_WORKLOADS:
            on_pg = [r for r in by_workload[name] if "Redis" not in r["case"]]
            assert all(r["verdict"] == "skipped" for r in on_pg)
            continue
        assert measured, f"{name} produced no figures: {by_workload[name]}"
        for row in measured:
            assert math.isfinite(row["value"]), row
            # A growth is the difference of two measured figures: at smoke sizes noise can take
            # it below zero. Every other figure is a duration, a size or a rate.
            assert row["value"] >= 0 or row["case"] in SIGNED, row
            assert row["unit"], row
            assert row["verdict"] in ("pass", "miss", "report"), row
        if not pg_skipped:
            rows = [
                r
                for r in by_workload[name]
                if not (redis_skipped and "Redis" in r["case"])
                and not (nats_skipped and "NATS" in r["case"])
                and not (not DBOS and "DBOS" in r["case"])
            ]
            assert all(r["value"] is not None for r in rows), rows


def test_report_names_the_environment(report: dict) -> None:
    env = report["environment"]
    for key in ("python", "sqlite", "cores", "cpu"):
        assert env[key], key
    if not report["settings"]["postgresql_skipped"]:
        assert env["postgresql"]


def test_targets_are_judged(report: dict) -> None:
    judged = [r for r in report["results"] if r["target"] is not None and r["value"] is not None]
    assert judged
    for row in judged:
        assert row["ratio"] is not None and row["verdict"] in ("pass", "miss"), row

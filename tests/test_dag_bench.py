"""The DAG benchmark keeps running (``python -m benchmarks.dag_bench --quick``); never how fast."""

from __future__ import annotations

import pytest

from benchmarks import dag_bench

pytestmark = pytest.mark.slow


def test_the_dag_benchmark_reports_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    results = dag_bench.main(["--quick"])
    assert [row["steps"] for row in results["parallel"]] == [4, 16]
    assert [(row["store"], row["steps"]) for row in results["per_step"]] == [
        ("memory", 20),
        ("memory", 100),
        ("sqlite", 20),
        ("sqlite", 100),
    ]
    assert all(row["wall_s"] > 0 and row["speedup"] > 0 for row in results["parallel"])
    assert all(row["total_s"] > 0 and row["cpu_s"] > 0 for row in results["per_step"])
    assert "speed-up" in capsys.readouterr().out

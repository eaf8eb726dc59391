"""The scrape benchmark keeps running (``python -m benchmarks.metrics_scrape --quick``); never
how fast."""

from __future__ import annotations

import pytest

from benchmarks import metrics_scrape

pytestmark = pytest.mark.slow


def test_the_scrape_benchmark_reports_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    rows = metrics_scrape.main(["--quick"])
    assert [row["instances"] for row in rows] == [100, 1000]
    for row in rows:
        assert row["listing_ms"] > 0 and row["count_ms"] > 0 and row["scrape_ms"] > 0
    assert "count_instances" in capsys.readouterr().out

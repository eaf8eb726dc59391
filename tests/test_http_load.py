"""A tiny run of benchmarks/http_load.py (the full one is N = 10 000; see docs/performance.md).

Checks that every event sent through HTTP and through `Engine.send` is counted by the
instances, and that the table has its rows; the figures themselves are not judged here.
"""

from __future__ import annotations

import pytest

from benchmarks.http_load import run, table

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_the_http_load_script_runs_small(pg_url: str) -> None:
    rows = run(pg_url, events=40, instances=4, concurrency=4, drop=False)
    assert [r["run"] for r in rows] == [
        "HTTP: httpx.Client, threads",
        "HTTP: httpx.AsyncClient",
        "Engine.send (threads)",
        "read: engine thread pool",
        "read: psycopg async",
    ]
    assert all(r["per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in rows)
    assert "HTTP: httpx.Client, threads" in table(rows)

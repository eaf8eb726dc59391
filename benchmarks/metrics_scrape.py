"""The cost of one ``/metrics`` scrape as the store grows: 1 000 and 100 000 instances on SQLite.

``python -m benchmarks.metrics_scrape [--quick]`` prints one table (it is not one of the
numbered workloads of ``python -m benchmarks``). The store holds N records of three workflow
types in four statuses, each with a data of ~200 bytes and a state of ~600 (what a waiting
instance of a small workflow stores). Two ways of reading the instance gauge, each the median
of 5 reads (3 with ``--quick``, where N is 100 and 1 000):

- **listing**: every record's type and status from `Store.list` (how a scrape read the gauge
  before `Store.count_instances`; the Redis and NATS stores still do);
- **count_instances**: the store's ``GROUP BY workflow, status``;

and a whole scrape (`stmtflow.http._metrics.render`: the gauge, the due backlog and the
pending inputs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stmtflow.http._api import Counters
from stmtflow.http._metrics import render
from stmtflow.runtime import Engine
from stmtflow.stores import Record, SQLiteStore, Store

TYPES = ("Order", "Refund", "Report")
STATUSES = ("waiting", "finished", "failed", "cancelled")
DATA = json.dumps({"item": "book", "price": 12, "note": "x" * 150})
STATE = json.dumps({"threads": [{"id": "_main_", "cur_step": "payment", "pad": "y" * 520}]})


def _fill(url: str, n: int) -> None:
    store = SQLiteStore(url.removeprefix("sqlite:///"))
    try:
        for i in range(n):
            rec = Record(
                id=f"i-{i:06d}",
                workflow=TYPES[i % len(TYPES)],
                data=DATA,
                state=STATE,
                status=STATUSES[i % len(STATUSES)],
            )
            store.create(rec)
    finally:
        store.close()


def _listed(store: Store) -> Counter[tuple[str, str]]:
    """The gauge as a scrape read it before `Store.count_instances`."""
    return Counter((r.workflow, r.status) for r in store.list())


def _median_ms(read: Callable[[], Any], runs: int) -> float:
    read()  # warm-up: the file's pages in the page cache
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        read()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else 5
    rows: list[dict[str, Any]] = []
    print("one /metrics scrape on SQLite (ms, median)")
    print(f"{'instances':>10} {'listing':>9} {'count_instances':>16} {'scrape':>8}")
    for n in (100, 1000) if args.quick else (1000, 100_000):
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'metrics.db'}"
        _fill(url, n)
        with Engine(url) as engine:
            store = engine.store
            listing = _median_ms(lambda s=store: _listed(s), runs)
            counted = _median_ms(store.count_instances, runs)
            scrape = _median_ms(lambda: render(engine, Counters()), runs)
            assert sum(store.count_instances().values()) == n
        rows.append(
            {"instances": n, "listing_ms": listing, "count_ms": counted, "scrape_ms": scrape}
        )
        print(f"{n:>10,} {listing:>9.2f} {counted:>16.2f} {scrape:>8.2f}")
    return rows


if __name__ == "__main__":
    main()

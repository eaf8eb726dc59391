"""One stmtflow worker process: ``python worker.py STORE_URL [--lease S] [--concurrency N]
[--ready FILE]``.

Serves the workflows of ``flows`` with `Engine.run_worker` until SIGTERM/SIGINT, then prints
its counters as one JSON line on stdout. The tests kill it with SIGKILL to simulate a crash.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta
from pathlib import Path

import flows

from stmtflow.runtime import Engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", help="the store URL")
    parser.add_argument("--lease", type=float, default=5.0, help="lease in seconds")
    parser.add_argument("--concurrency", type=int, default=1, help="worker threads")
    parser.add_argument("--poll", type=float, default=0.05, help="idle poll interval in seconds")
    parser.add_argument("--ready", type=Path, help="a file to create after the first tick")
    args = parser.parse_args()
    engine = Engine(
        args.url,
        workflows=flows.WORKFLOWS,
        lease=timedelta(seconds=args.lease),
        owner=f"worker:{os.getpid()}",
        error_backoff=timedelta(seconds=1),
    )
    started = time.monotonic()
    ready: Path | None = args.ready

    def first_tick(_: object) -> None:
        if ready is not None and not ready.exists():
            ready.touch()  # serving, with SIGTERM handled: a test may start the race

    stats = engine.run_worker(
        concurrency=args.concurrency, poll_interval=args.poll, on_tick=first_tick
    )
    engine.close()
    summary = {
        "pid": os.getpid(),
        "processed": stats.processed,
        "fired": stats.fired,
        "failed": stats.failed,
        "last_error": stats.last_error,
        "seconds": round(time.monotonic() - started, 3),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

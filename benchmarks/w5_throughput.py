"""W5 (throughput): instances per second through ``run_worker`` on PostgreSQL, 1 and 2 workers.

Each instance (`Order`) runs 5 steps, waits on a timer of 0 s, then waits for one callback
(``confirm``) that the benchmark process sends. The worker processes (``spawn``ed, each one
`Engine.run_worker` with one thread) are started and ready before the clock starts; then the
instances are inserted at once as fresh records (what ``Engine.start`` stores before it runs
anything), and the clock stops when the last one has finished. Meanwhile the benchmark process
sends ``confirm`` to every instance that waits for it (found with one query per poll that
returns one row -- a count and the waiting ids -- so polling costs little of the CPU the
workers share; two sender threads, so the sender is not the bottleneck).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from multiprocessing.synchronize import Event

import stmtflow as sf
from benchmarks import nats_bench
from benchmarks.db import pg_clone, pg_connect, pg_truncate
from benchmarks.flows import Order
from benchmarks.harness import Result, Settings, Stopwatch, Target, measure, skipped
from stmtflow.runtime import Engine
from stmtflow.stores import Record, open_store

POLL = 0.002
"""Seconds between the benchmark process's polls for instances awaiting ``confirm``."""


def serve(url: str, ready: Event) -> None:
    """A worker process: run the engine's worker loop until SIGTERM."""
    engine = Engine(url, workflows=[Order])
    ready.set()
    engine.run_worker(poll_interval=0.01)
    engine.close()


class _Workers:
    """``count`` worker processes serving the store at ``url``."""

    def __init__(self, url: str, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        events = [ctx.Event() for _ in range(count)]
        self.processes = [ctx.Process(target=serve, args=(url, ev), daemon=True) for ev in events]
        for process in self.processes:
            process.start()
        for event in events:
            if not event.wait(60):
                self.stop()
                raise RuntimeError("a W5 worker process did not start within 60 s")

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker finishes its unit, then exits
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()


def _run_batch(url: str, engine: Engine, prefix: str, count: int) -> float:
    """Instances per second for ``count`` fresh instances, from insertion to the last finish."""
    # Each batch starts from an empty table: finished instances of earlier batches would make
    # the benchmark's own polling query (and its PostgreSQL CPU) grow from run to run, and
    # the later (two-worker) runs would pay more for it.
    pg_truncate(url)
    template = f"{prefix}template"
    state = sf.new_state(template, "Order")
    now = datetime.now(UTC)
    engine.store.create(
        Record(
            id=template,
            workflow="Order",
            data=Order().model_dump_json(),
            state=state.model_dump_json(),
            status=state.status.value,
            wake_at=now,
            # Leased, so no worker takes the template itself; its clones come unleased.
            lease_owner="w5-benchmark",
            lease_expires=now + timedelta(hours=1),
        )
    )
    # One row per poll: how many finished, and the ids waiting for ``confirm``. A send
    # finishes its instance before the next poll, so a waiting id is one not yet sent to.
    poll = (
        "SELECT count(*) FILTER (WHERE status = 'finished'), "
        "coalesce(array_agg(id) FILTER (WHERE status = 'waiting' AND wake_at IS NULL "
        "AND lease_owner IS NULL), '{}') "
        "FROM stmtflow_instances WHERE id LIKE %(prefix)s AND id <> %(template)s"
    )
    params = {"prefix": f"{prefix}%", "template": template}
    sent: set[str] = set()
    with pg_connect(url) as conn, ThreadPoolExecutor(2) as senders, Stopwatch() as sw:
        pg_clone(url, template, prefix, count)
        conn.execute("DELETE FROM stmtflow_instances WHERE id = %(template)s", params)
        while True:
            finished, waiting = conn.execute(poll, params).fetchone()
            if finished == count:
                break
            waiting = [id for id in waiting if id not in sent]
            sent.update(waiting)
            list(senders.map(lambda id: engine.send(id, "confirm"), waiting))
            if not waiting:
                time.sleep(POLL)
    return count / sw.seconds


def _next_batch(url: str, engine: Engine, prefixes: Iterator[str], count: int) -> float:
    """`_run_batch` under the next id prefix (each batch its own instances)."""
    return _run_batch(url, engine, next(prefixes), count)


def w5(settings: Settings) -> list[Result]:
    counts = (1, 2)
    batch = 20 if settings.quick else 200
    if settings.pg_url is None:
        why = settings.pg_skip or "no PostgreSQL"
        return [
            *(skipped("W5", f"{n} worker process(es)", "instances/s", why) for n in counts),
            *nats_bench.w5(settings, batch),
        ]
    url = settings.pg_url
    pg_truncate(url)
    engine = Engine(open_store(url), workflows=[Order])
    results: list[Result] = []
    try:
        for processes in counts:
            workers = _Workers(url, processes)
            try:
                prefixes = iter(f"w5-{processes}-{run}-" for run in range(settings.repeats + 1))
                value, samples = measure(
                    partial(_next_batch, url, engine, prefixes, batch), settings.repeats
                )
            finally:
                workers.stop()
            target = (
                None
                if processes == 1
                else Target("≥ 1.6x one worker", 1.6, base=results[0].value, higher_is_better=True)
            )
            results.append(
                Result(
                    "W5",
                    f"{processes} worker process(es), PostgreSQL",
                    value,
                    "instances/s",
                    samples,
                    target,
                    note=f"{batch} instances per run; 5 steps, 0 s timer, 1 callback each",
                )
            )
    finally:
        engine.close()
    results += nats_bench.w5(settings, batch)
    return results

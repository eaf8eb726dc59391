"""The worker: claim due instances and work them, tick after tick, until told to stop.

A tick claims due records in small batches under leases (`Store.claim_due`), works each in a
unit of its own (`stmtflow.runtime._unit.Unit.work_due`) and counts what it did in
`WorkerStats`. An error in one instance is recorded on it and counted, and the tick goes on with
the next. `run_worker` loops on ticks in one or more threads; SIGINT and SIGTERM (in the main
thread) let the current unit finish, then stop the loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from stmtflow.errors import ConflictError, StmtflowError
from stmtflow.runtime._reads import WorkerStats
from stmtflow.runtime._schedules import fire_due
from stmtflow.runtime._unit import open_unit

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine

__all__ = ["run_worker", "tick"]

_log = logging.getLogger("stmtflow.worker")


def tick(engine: Engine, now: datetime, limit: int, stats: WorkerStats) -> int:
    """Claim and work every instance due at ``now``, ``limit`` at a time; how many things fired.
    Then deliver the outbox messages due at ``now`` (`stmtflow.runtime._outbox`).

    Due schedules are fired first (`stmtflow.runtime._schedules.fire_due`), each fire's
    instance run as it starts. Each record is worked once per tick (one claimed again in a
    later batch is released).
    """
    count = fire_due(engine, now, stats)
    stats.fired += count
    seen: set[str] = set()
    store = engine.store
    while True:
        batch = store.claim_due(now, engine.owner, engine.lease, limit)
        fresh = [r for r in batch if r.id not in seen]
        for rec in batch:
            if rec.id in seen:
                store.release(rec.id, engine.owner, rec.fence)
        if not fresh:
            engine.outbox.deliver(now)  # what is due: other processes' messages, retries
            return count
        for rec in fresh:
            seen.add(rec.id)
            # A batch is worked one record at a time: by its turn, a record's lease may
            # have lapsed and been taken over. Renewing checks the fence before any step
            # runs, so a step is not run by a worker whose checkpoint would be refused.
            # Only a lease that is about to lapse can be lost: renew just those.
            if rec.lease_expires is None or rec.lease_expires - engine.clock() < engine.lease / 2:
                try:
                    rec = store.renew(rec.id, engine.owner, rec.fence, engine.lease, engine.clock())
                except ConflictError:
                    continue
            stats.processed += 1
            try:
                with engine._chain(), open_unit(engine, rec, now) as unit:
                    fired = unit.work_due().count
                    unit.finish()
            except (StmtflowError, ValidationError) as exc:
                stats.failed += 1
                stats.last_error = f"{rec.id}: {exc}"
                continue
            count += fired
            stats.fired += fired


def run_worker(
    engine: Engine,
    *,
    concurrency: int,
    poll_interval: float,
    stop: threading.Event,
    on_tick: Callable[[WorkerStats], None] | None,
    handle_signals: bool,
) -> WorkerStats:
    """Tick in ``concurrency`` threads until ``stop`` is set (see `Engine.run_worker`)."""
    stats = WorkerStats()
    lock = threading.Lock()
    restore = _install_signals(stop) if handle_signals else None

    def loop() -> None:
        while not stop.is_set():
            local = WorkerStats()
            try:
                # Small batches: a claimed record waits for the ones before it, and other
                # workers can take what this one has not claimed yet.
                tick(engine, engine.clock(), 4, local)
                engine.prune_some()  # small batches, at most once per prune_interval
            except Exception as exc:
                # E.g. the database went away: the worker keeps going and retries after a
                # pause; the lease of whatever it held lapses and another worker takes over.
                _log.warning("worker tick failed: %s", exc, exc_info=True)
                local.failed += 1
                local.last_error = f"{type(exc).__name__}: {exc}"
                stop.wait(poll_interval)
            with lock:
                stats.processed += local.processed
                stats.fired += local.fired
                stats.failed += local.failed
                stats.last_error = local.last_error or stats.last_error
                if on_tick is not None:
                    on_tick(stats)
            if not local.processed:
                stop.wait(poll_interval)

    try:
        threads = [threading.Thread(target=loop, daemon=True) for _ in range(concurrency - 1)]
        for t in threads:
            t.start()
        loop()
        for t in threads:
            t.join()
    finally:
        if restore is not None:
            restore()
    return stats


def _install_signals(stop: threading.Event) -> Callable[[], None] | None:
    """Make SIGINT and SIGTERM set ``stop``; returns how to undo it (None off the main thread)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore

"""W6 (due-index scale): one ``tick`` firing the 100 due instances among many sleeping ones.

Every instance is a `Nap` asleep on a one-hour timer. The sleepers were put to sleep at the
tick's time (due an hour later); the 100 due ones two hours before it (due an hour ago). Set-up
bypasses the engine: the store writes one template record of each kind, which SQL clones
(`benchmarks.db`). After each timed tick the 100 fired instances are replaced by fresh due
copies, so every repetition fires exactly 100.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import stmtflow as sf
from benchmarks import nats_bench
from benchmarks.db import pg_clone, pg_connect, pg_truncate, sqlite_clone, template_record
from benchmarks.flows import Nap
from benchmarks.harness import Result, Settings, Stopwatch, Target, measure, skipped
from stmtflow.runtime import Engine
from stmtflow.stores import Record, Store, open_store

DUE = 100


def _napping(id: str, asleep_at: datetime) -> Record:
    wf, state = Nap(), sf.new_state(id, "Nap")
    sf.resume(wf, state, now=asleep_at)
    assert state.status is sf.WorkflowStatus.WAITING
    return template_record(wf, state, "Nap")


def _tick(store: Store, now: datetime) -> float:
    """ms of one tick at ``now``; it must fire exactly the due instances."""
    engine = Engine(store, workflows=[Nap])
    with Stopwatch() as sw:
        fired = engine.tick(now)
    assert fired == DUE, f"the tick fired {fired} instances, expected {DUE}"
    return sw.seconds * 1e3


class _Population:
    """``total`` napping instances in one store, ``DUE`` of them due at ``now``."""

    def __init__(
        self,
        store: Store,
        clone: Callable[[str, str, int], None],
        execute: Callable[[str], None],
        total: int,
        now: datetime,
    ) -> None:
        self.store, self.clone, self.execute, self.now = store, clone, execute, now
        store.create(_napping("sleeper-template", now))
        clone("sleeper-template", "sleeper-", total - DUE)
        execute("DELETE FROM stmtflow_instances WHERE id = 'sleeper-template'")
        self.refill()

    def refill(self) -> None:
        """(Re)place the due instances by fresh copies, not yet fired."""
        self.execute("DELETE FROM stmtflow_instances WHERE id LIKE 'due-%'")
        self.store.create(_napping("due-template", self.now - timedelta(hours=2)))
        self.clone("due-template", "due-", DUE)
        self.execute("DELETE FROM stmtflow_instances WHERE id = 'due-template'")

    def timed_tick(self) -> float:
        try:
            return _tick(self.store, self.now)
        finally:
            self.refill()


def _sqlite_population(settings: Settings, total: int, now: datetime) -> _Population:
    path = settings.workdir / f"w6-{total}.db"
    store = open_store(f"sqlite:///{path}")

    def execute(sql: str) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(sql)
        finally:
            conn.close()

    return _Population(
        store, lambda tpl, prefix, n: sqlite_clone(str(path), tpl, prefix, n), execute, total, now
    )


def _pg_population(url: str, total: int, now: datetime) -> _Population:
    store = open_store(url)
    pg_truncate(url)

    def execute(sql: str) -> None:
        with pg_connect(url) as conn:
            conn.execute(sql)
            conn.execute("ANALYZE stmtflow_instances")

    return _Population(
        store, lambda tpl, prefix, n: pg_clone(url, tpl, prefix, n), execute, total, now
    )


def sizes(settings: Settings) -> tuple[tuple[int, int], tuple[int, int]]:
    """(SQLite small, large), (PostgreSQL small, large) stored-instance counts."""
    if settings.quick:
        return (1_000, 10_000), (1_000, 5_000)
    return (10_000, 1_000_000), (10_000, 100_000)


def w6(settings: Settings) -> list[Result]:
    (lite_small, lite_large), (pg_small, pg_large) = sizes(settings)
    now = datetime.now(UTC)
    results: list[Result] = []
    base: float | None = None
    for total in (lite_small, lite_large):
        population = _sqlite_population(settings, total, now)
        try:
            value, samples = measure(population.timed_tick, settings.repeats)
        finally:
            population.store.close()
        target = None if base is None else Target(f"≤ 1.2x at {lite_small:,}", 1.2, base=base)
        base = value if base is None else base
        results.append(
            Result(
                "W6",
                f"SQLite, {total:,} stored, {DUE} due: one tick",
                value,
                "ms",
                samples,
                target,
            )
        )
    nats_sizes = (100, 1_000) if settings.quick else (1_000, 10_000)
    if settings.pg_url is None:
        return [
            *results,
            skipped("W6", f"PostgreSQL, {pg_large:,} stored", "ms", settings.pg_skip or ""),
            *nats_bench.w6(settings, nats_sizes),
        ]
    pg_base: float | None = None
    for total in (pg_small, pg_large):
        population = _pg_population(settings.pg_url, total, now)
        try:
            value, samples = measure(population.timed_tick, settings.repeats)
        finally:
            population.store.close()
        note = "" if pg_base is None else f"{value / pg_base:.2f}x the tick at {pg_small:,}"
        pg_base = value if pg_base is None else pg_base
        results.append(
            Result(
                "W6",
                f"PostgreSQL, {total:,} stored, {DUE} due: one tick",
                value,
                "ms",
                samples,
                note=note,
            )
        )
    results += nats_bench.w6(settings, nats_sizes)
    return results

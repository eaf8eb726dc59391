"""W10 (schedules): what schedules cost a worker's tick.

Two figures per store, SQLite, PostgreSQL, Redis and NATS (each server store when reachable):

- an idle tick (nothing due) with N stored schedules, none due: the tick asks the store for due
  schedules through its index (``due_at`` on SQL, a sorted set on Redis, the clock, near slot
  and current minute on NATS: docs/stores.md), so the figure should stay flat as N grows;
- one tick firing 100 due schedules, per fire: each fire is two compare-and-set writes of the
  schedule's row around the start of its instance (a `Counter` of one step), so it costs about
  one instance start plus two small writes.

Set-up goes through `Engine.schedule`, with a clock an hour before the tick's time; the idle
schedules fire yearly, the due ones hourly (with ``catchup`` so the one due fire runs).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from benchmarks import db, nats_bench
from benchmarks.flows import Counter
from benchmarks.harness import Result, Settings, Stopwatch, measure, skipped
from stmtflow.runtime import Engine

DUE = 100


def _idle(url: str, total: int, now: datetime) -> tuple[float, list[float]]:
    before = now - timedelta(hours=1)
    with Engine(url, workflows=[Counter], clock=lambda: before) as setup:
        for n in range(total):
            setup.schedule(f"idle-{n}", Counter, "0 0 1 1 *")  # 1 January: not due
    with Engine(url, workflows=[Counter]) as engine:

        def tick() -> float:
            with Stopwatch() as sw:
                fired = engine.tick(now)
            assert fired == 0
            return sw.seconds * 1e3

        return measure(tick, 5)


def _firing(url: str, now: datetime, round_: int) -> float:
    before = now.replace(minute=0, second=0, microsecond=0) - timedelta(minutes=30)
    with Engine(url, workflows=[Counter], clock=lambda: before) as setup:
        for n in range(DUE):
            setup.schedule(
                f"due-{round_}-{n}",
                Counter,
                "0 * * * *",
                input={"n": 1},
                catchup=timedelta(hours=1),
            )
    with Engine(url, workflows=[Counter]) as engine:
        with Stopwatch() as sw:
            engine.tick(now)
        started = [r for r in engine.store.list() if r.id.startswith(f"due-{round_}-")]
        assert len(started) == DUE, f"{len(started)} fires started, expected {DUE}"
        for n in range(DUE):
            engine.unschedule(f"due-{round_}-{n}")
    return sw.seconds * 1e3 / DUE


def _rows(store: str, url: str, settings: Settings, sizes: tuple[int, ...]) -> list[Result]:
    now = datetime.now(UTC)
    rows: list[Result] = []
    done = 0
    for total in sizes:
        value, samples = _idle(url, total - done, now)  # schedules add up across sizes
        done = total
        rows.append(
            Result(
                "W10", f"{store}, {total:,} schedules, none due: idle tick", value, "ms", samples
            )
        )
    counter = iter(range(1_000))
    value, samples = measure(lambda: _firing(url, now, next(counter)), settings.repeats)
    rows.append(
        Result("W10", f"{store}, {DUE} due schedules: one tick, per fire", value, "ms", samples)
    )
    return rows


def w10(settings: Settings) -> list[Result]:
    sizes = (10, 1_000) if settings.quick else (10, 10_000)
    rows = _rows("SQLite", f"sqlite:///{settings.workdir / 'w10.db'}", settings, sizes)
    if settings.pg_url is None:
        rows.append(skipped("W10", "PostgreSQL", "ms", settings.pg_skip or ""))
    else:
        from benchmarks.db import pg_connect, pg_truncate

        Engine(settings.pg_url).close()  # the schedules table exists from here on
        pg_truncate(settings.pg_url)
        with pg_connect(settings.pg_url) as conn:
            conn.execute("DELETE FROM stmtflow_schedules")
        rows += _rows("PostgreSQL", settings.pg_url, settings, sizes)
    return rows + _redis(settings, sizes) + _nats(settings, sizes)


def _redis(settings: Settings, sizes: tuple[int, ...]) -> list[Result]:
    if settings.redis_url is None:
        return [skipped("W10", "Redis", "ms", settings.redis_skip or "no Redis")]
    url = db.with_prefix(settings.redis_url, f"{db.redis_prefix(settings.redis_url)}_w10")
    try:
        return _rows("Redis", url, settings, sizes)
    finally:
        db.redis_delete(url)


def _nats(settings: Settings, sizes: tuple[int, ...]) -> list[Result]:
    if settings.nats_url is None:
        return [skipped("W10", "NATS", "ms", settings.nats_skip or "no NATS")]
    url = nats_bench.run_url(settings.nats_url.split("?")[0], "w10")
    try:
        return _rows("NATS", url, settings, sizes)
    finally:
        nats_bench.drop(url)

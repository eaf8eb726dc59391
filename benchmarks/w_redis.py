"""W1 (b), W2, W3 and W5 on the Redis store, beside their SQLite and PostgreSQL rows.

Each workload is the one of its own module, run on ``redis://...?prefix=<the run's own>``:

- W1 (b): the engine's 1000 steps, one Lua-script write per step, next to the floor -- one bare
  ``HSET`` of a row of the same size (one round trip, no script); and what the history costs
  (events and snapshots written by the same script), with it off, events only, both.
- W2: the delivery after a history of K steps, copies made through `Store.create`.
- W3: every delivery to an instance with 100 / 1000 waiting threads.
- W5: instances per second through 1 and 2 ``run_worker`` processes.

Every row's note states the durability the server was measured with (`db.redis_durability`):
the shared test server runs without AOF, so its figures are the cost of the store's scripts and
round trips, not of a disk; point ``$STMTFLOW_BENCH_REDIS`` at a server with ``appendonly yes``
and ``appendfsync always`` to measure the durable setting.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from statistics import median

import stmtflow as sf
from benchmarks import db
from benchmarks.flows import Order
from benchmarks.harness import Result, Settings, Stopwatch, Target, measure, skipped
from benchmarks.w1_sequential import (
    HISTORY_SETTINGS,
    _engine_per_step,
    _sized_row,
    _steps,
    _timed_commits,
)
from benchmarks.w2_history import (
    DELIVERIES_PER_REPEAT,
    _deliver,
    build_history,
    fanout_waiting,
    history_sizes,
)
from benchmarks.w3_fanout import _deliver_next, widths
from benchmarks.w5_throughput import _Workers
from stmtflow.runtime import Engine
from stmtflow.stores import Record, open_store

__all__ = ["redis_w1", "redis_w2", "redis_w3", "redis_w5"]


def _why(settings: Settings) -> str:
    return settings.redis_skip or "no Redis"


def redis_floor(url: str, n: int) -> float:
    """µs per bare ``HSET`` of a W1-sized row's data and state (one round trip each)."""
    data, state = _sized_row(n)
    key = f"{db.redis_prefix(url)}:floor"
    with db.redis_client(url) as client:

        def commit(i: int) -> None:
            client.hset(key, mapping={"data": data, "state": state, "version": i})

        return _timed_commits(commit, n)


def redis_w1(settings: Settings) -> list[Result]:
    case = "(b) engine on Redis, commit per step"
    if settings.redis_url is None:
        return [skipped("W1", case, "µs/step", _why(settings))]
    n = _steps(settings)
    url = settings.redis_url
    store = open_store(url)
    engine_samples: list[float] = []
    floor_samples: list[float] = []
    variants: dict[str, list[float]] = {label: [] for label in HISTORY_SETTINGS}

    def pair() -> float:
        # Floor and engine (with and without history) alternate, so noise hits all alike.
        floor_samples.append(redis_floor(url, n))
        for label, options in HISTORY_SETTINGS.items():
            variants[label].append(_engine_per_step(store, n, **options))
        engine_samples.append(variants["history + snapshots (default)"][-1])
        return engine_samples[-1] / floor_samples[-1]

    try:
        measure(pair, settings.repeats)
    finally:
        store.close()
        db.redis_delete(url)
    warm = len(engine_samples) - settings.repeats
    floor = median(floor_samples[warm:])
    engine = median(engine_samples[warm:])
    bare_samples = variants["history off"][warm:]
    bare = median(bare_samples)
    durability = db.redis_durability(url)
    history_rows = []
    for label, all_samples in variants.items():
        samples = all_samples[warm:]
        if label == "history off":
            continue
        ratios = [h / b for h, b in zip(samples, bare_samples, strict=True)]
        history_rows.append(
            Result(
                "W1",
                f"(b) Redis {label} over history off",
                median(samples) / bare,
                "x",
                ratios,
                note=(
                    f"{median(samples):.0f} µs/step; ratio of medians (median of paired ratios "
                    f"{median(ratios):.2f}; no target set); {durability}"
                ),
            )
        )
    return [
        Result(
            "W1",
            "(b) floor: bare Redis HSET of the row",
            floor,
            "µs/commit",
            floor_samples[warm:],
            note=f"same row size; {durability}",
        ),
        Result(
            "W1",
            case,
            engine,
            "µs/step",
            engine_samples[warm:],
            note=f"N={n}; {engine / floor:.2f}x the bare HSET (no target set); {durability}",
        ),
        Result(
            "W1",
            "(b) engine on Redis, history off",
            bare,
            "µs/step",
            bare_samples,
            note=f"N={n}; Engine(history=False); {durability}",
        ),
        *history_rows,
    ]


def redis_w2(settings: Settings) -> list[Result]:
    sizes = history_sizes(settings)
    if settings.redis_url is None:
        return [skipped("W2", f"K={k}, Redis", "ms", _why(settings)) for k in sizes]
    url = settings.redis_url
    store = open_store(url)
    runs = settings.repeats * DELIVERIES_PER_REPEAT
    samples: dict[int, list[float]] = {k: [] for k in sizes}
    try:
        copies = {}
        for k in sizes:
            template = f"hist-{k}-template"
            build_history(store, k, template)
            db.store_clone(store, template, f"hist-{k}-", runs + 1)
            copies[k] = iter(db.clone_ids(f"hist-{k}-", runs + 1))
        for _ in range(runs + 1):  # the first round warms up
            for k in sizes:
                samples[k].append(_deliver(store, next(copies[k])))
    finally:
        store.close()
        db.redis_delete(url)
    durability = db.redis_durability(url)
    first, last = sizes[0], sizes[-1]
    flat = Result(
        "W2",
        f"K={last} over K={first} (flat); Redis",
        median(samples[last][1:]) / median(samples[first][1:]),
        "x",
        target=Target("≤ 1.2x", 1.2),
        note="ratio of medians, K's in turn",
    )
    return [
        Result(
            "W2",
            f"K={k}: load, deliver, 1 step, persist; Redis",
            median(samples[k][1:]),
            "ms",
            samples[k][1:],
            Target("≤ 1 ms", 1.0),
            note=durability,
        )
        for k in sizes
    ] + [flat]


def redis_w3(settings: Settings) -> list[Result]:
    small, large = widths(settings)
    if settings.redis_url is None:
        why = _why(settings)
        return [skipped("W3", f"{w} threads, Redis", "µs/delivery", why) for w in (small, large)]
    url = settings.redis_url
    store = open_store(url)
    results: list[Result] = []
    durability = db.redis_durability(url)
    try:
        for width in (small, large):
            repeats = settings.repeats if width == small else max(1, settings.repeats // 2)
            template = f"fanout-{width}-template"
            store.create(db.template_record(*fanout_waiting(width, template), "FanOut"))
            db.store_clone(store, template, f"fanout-{width}-", repeats + 1)
            copies = iter(db.clone_ids(f"fanout-{width}-", repeats + 1))
            value, samples = measure(partial(_deliver_next, store, copies, width), repeats)
            target = (
                Target("≤ 300 µs", 300.0)
                if width == small
                else Target(f"≤ 1.5x {small} threads", 1.5, base=results[0].value)
            )
            results.append(
                Result(
                    "W3",
                    f"{width} threads waiting, Redis",
                    value,
                    "µs/delivery",
                    samples,
                    target,
                    note=f"mean over all deliveries of one instance; {durability}",
                )
            )
    finally:
        store.close()
        db.redis_delete(url)
    return results


def _redis_batch(url: str, engine: Engine, prefix: str, count: int) -> float:
    """`benchmarks.w5_throughput._run_batch` on Redis: instances per second for ``count``."""
    db.redis_delete(url)  # each batch starts from an empty store, as on PostgreSQL
    state = sf.new_state(f"{prefix}template", "Order")
    key = db.redis_prefix(url)
    finished_key = f"{key}:status:finished:workflow:Order"
    waiting_key = f"{key}:status:waiting:workflow:Order"
    sent: set[str] = set()
    with db.redis_client(url) as client, ThreadPoolExecutor(2) as senders, Stopwatch() as sw:
        now = datetime.now(UTC)
        for id in db.clone_ids(prefix, count):
            engine.store.create(
                Record(
                    id=id,
                    workflow="Order",
                    data=Order().model_dump_json(),
                    state=state.model_dump_json().replace(f'"{prefix}template"', f'"{id}"'),
                    status=state.status.value,
                    wake_at=now,
                )
            )
        while client.zcard(finished_key) < count:
            # Waiting and no wake-up: waiting for ``confirm`` (one command, as one query on
            # PostgreSQL; reading each waiting record per poll kept the server busy).
            waiting = client.zdiff([waiting_key, f"{key}:due"])
            ready = [id for id in waiting if id not in sent]
            sent.update(ready)
            list(senders.map(lambda id: engine.send(id, "confirm"), ready))
            if not ready:
                time.sleep(0.002)
    return count / sw.seconds


def _next_batch(url: str, engine: Engine, prefixes: Iterator[str], count: int) -> float:
    return _redis_batch(url, engine, next(prefixes), count)


def redis_w5(settings: Settings) -> list[Result]:
    counts = (1, 2)
    if settings.redis_url is None:
        why = _why(settings)
        return [skipped("W5", f"{n} worker process(es), Redis", "instances/s", why) for n in counts]
    url = settings.redis_url
    batch = 20 if settings.quick else 200
    engine = Engine(open_store(url), workflows=[Order], lease=timedelta(seconds=30))
    durability = db.redis_durability(url)
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
                    f"{processes} worker process(es), Redis",
                    value,
                    "instances/s",
                    samples,
                    target,
                    note=f"{batch} instances per run; {durability}",
                )
            )
    finally:
        engine.close()
        db.redis_delete(url)
    return results

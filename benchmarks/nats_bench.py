"""The NATS JetStream rows of W1 (b), W2, W3, W5 and W6: the same workloads on a NATS store.

The server is ``$STMTFLOW_BENCH_NATS`` (or ``$STMTFLOW_TEST_NATS``), default
``nats://127.0.0.1:4222``; each run uses a bucket of its own (``storage=file``: JetStream's file
store, which acknowledges a write once the server has written it, fsyncing on its own
interval), deleted at the end. Copies of stored instances are made through the store (NATS has
no bulk insert): the template's record with the id replaced in its state, as `benchmarks.db`
clones rows in SQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from statistics import median
from typing import Any

import stmtflow as sf
from benchmarks.db import clone_ids, template_record
from benchmarks.flows import Order
from benchmarks.harness import Result, Settings, Stopwatch, Target, measure, skipped
from stmtflow.errors import NotFound, UnknownCallback
from stmtflow.runtime import Engine
from stmtflow.stores import Record, Store, open_store

DEFAULT_NATS = "nats://127.0.0.1:4222"
STORAGE = "file"
"""The JetStream storage measured (the store's default)."""


def nats_server() -> str:
    return (
        os.environ.get("STMTFLOW_BENCH_NATS")
        or os.environ.get("STMTFLOW_TEST_NATS")
        or DEFAULT_NATS
    )


def nats_reachable(server: str) -> str | None:
    """None when a NATS server with JetStream answers at ``server``, else why not."""
    try:
        import nats
    except ImportError:
        return "nats-py is not installed (pip install 'stmtflow[nats]')"

    async def probe() -> None:
        nc = await nats.connect(server, connect_timeout=3, allow_reconnect=False)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # whatever stops it is the reason reported
        return f"NATS with JetStream at {server} is unreachable: {exc!r}"
    return None


def run_url(server: str, name: str = "run") -> str:
    return f"{server}?bucket=stmtflow_bench_{os.getpid()}_{name}&storage={STORAGE}"


def server_version(url: str) -> str:
    import nats

    async def ask() -> str:
        nc = await nats.connect(url.split("?")[0])
        try:
            return str(nc.connected_server_version)
        finally:
            await nc.close()

    return asyncio.run(ask())


def drop(url: str) -> None:
    from stmtflow.stores.nats import drop as drop_bucket

    drop_bucket(url)


def clone(
    store: Store,
    template_id: str,
    prefix: str,
    count: int,
    wake: Callable[[int], datetime | None] | None = None,
) -> list[str]:
    """``count`` copies of the stored record ``template_id`` (4 threads); their ids.

    ``wake(i)`` gives copy ``i`` its own wake-up time (default: the template's).
    """
    template = store.get(template_id)
    ids = clone_ids(prefix, count)

    def one(i: int) -> None:
        id = ids[i]
        store.create(
            Record(
                id=id,
                workflow=template.workflow,
                data=template.data,
                state=template.state.replace(f'"{template_id}"', f'"{id}"'),
                status=template.status,
                wake_at=template.wake_at if wake is None else wake(i),
            )
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))
    return ids


def _skip(settings: Settings, workload: str, cases: list[tuple[str, str]]) -> list[Result]:
    return [skipped(workload, c, u, settings.nats_skip or "no NATS") for c, u in cases]


# -- W1 (b): a write per step -------------------------------------------------------------------


def w1(settings: Settings, n: int) -> list[Result]:
    """W1 (b) on NATS: the bare write, and the engine with and without its history (the
    variants of `benchmarks.w1_sequential.HISTORY_SETTINGS`), alternating so noise hits all."""
    case = "(b) engine on NATS JetStream KV, write per step"
    if settings.nats_url is None:
        return _skip(settings, "W1", [(case, "µs/step")])
    from benchmarks.w1_sequential import HISTORY_SETTINGS, _engine_per_step, _sized_row

    store = open_store(settings.nats_url)
    data, state = _sized_row(n)
    row = Record(id="floor", workflow="Counter", data=data, state=state, status="resuming")
    current = store.create(row)
    floors: list[float] = []
    variants: dict[str, list[float]] = {label: [] for label in HISTORY_SETTINGS}
    default = "history + snapshots (default)"

    def floor() -> float:  # a bare compare-and-set write of the same row, through the store
        nonlocal current
        with Stopwatch() as sw:
            for _ in range(n):
                current = store.update(current, expected_version=current.version)
        return sw.seconds / n * 1e6

    def pair() -> float:
        floors.append(floor())
        for label, options in HISTORY_SETTINGS.items():
            variants[label].append(_engine_per_step(store, n, **options))
        return variants[default][-1] / floors[-1]

    try:
        measure(pair, settings.repeats)
    finally:
        store.close()
    warm = len(floors) - settings.repeats
    f, e = median(floors[warm:]), median(variants[default][warm:])
    off_samples = variants["history off"][warm:]
    off = median(off_samples)
    history_rows = []
    for label, all_samples in variants.items():
        if label == "history off":
            continue
        samples = all_samples[warm:]
        ratios = [h / b for h, b in zip(samples, off_samples, strict=True)]
        history_rows.append(
            Result(
                "W1",
                f"(b) NATS {label} over history off",
                median(samples) / off,
                "x",
                ratios,
                note=(
                    f"{median(samples):.0f} µs/step; ratio of medians (median of paired ratios "
                    f"{median(ratios):.2f}; no target set); storage={STORAGE}"
                ),
            )
        )
    return [
        Result(
            "W1",
            "(b) floor: store.update of the same row on NATS",
            f,
            "µs/write",
            floors[warm:],
            note=f"KV compare-and-set by revision; storage={STORAGE}",
        ),
        Result(
            "W1",
            case,
            e,
            "µs/step",
            variants[default][warm:],
            note=f"N={n}; {e / f:.2f}x the bare write (no target set); storage={STORAGE}",
        ),
        Result(
            "W1",
            "(b) engine on NATS, history off",
            off,
            "µs/step",
            off_samples,
            note=f"N={n}; Engine(history=False); storage={STORAGE}",
        ),
        *history_rows,
    ]


# -- W2: resume after a long history --------------------------------------------------------------


def w2(settings: Settings, sizes: tuple[int, ...], runs: int) -> list[Result]:
    cases = [(f"K={k}: load, deliver, 1 step, persist, NATS", "ms") for k in sizes]
    if settings.nats_url is None:
        return _skip(settings, "W2", cases)
    from benchmarks.w2_history import _deliver, build_history

    store = open_store(settings.nats_url)
    samples: dict[int, list[float]] = {k: [] for k in sizes}
    try:
        copies = {}
        for k in sizes:
            build_history(store, k, f"nhist-{k}-template")
            copies[k] = iter(clone(store, f"nhist-{k}-template", f"nhist-{k}-", runs + 1))
        for _ in range(runs + 1):
            for k in sizes:
                samples[k].append(_deliver(store, next(copies[k])))
    finally:
        store.close()
    return [
        Result(
            "W2",
            case,
            median(samples[k][1:]),
            "ms",
            samples[k][1:],
            Target("≤ 1 ms", 1.0),
            note=f"storage={STORAGE}",
        )
        for (case, _), k in zip(cases, sizes, strict=True)
    ]


# -- W3: fan-out ----------------------------------------------------------------------------------


def w3(settings: Settings, widths: tuple[int, int]) -> list[Result]:
    cases = [(f"{w} threads waiting, NATS", "µs/delivery") for w in widths]
    if settings.nats_url is None:
        return _skip(settings, "W3", cases)
    from benchmarks.w2_history import fanout_waiting

    store = open_store(settings.nats_url)
    results: list[Result] = []
    try:
        for (case, unit), width in zip(cases, widths, strict=True):
            repeats = settings.repeats if width == widths[0] else max(1, settings.repeats // 2)
            template = f"nfan-{width}-template"
            store.create(template_record(*fanout_waiting(width, template), "FanOut"))
            copies = iter(clone(store, template, f"nfan-{width}-", repeats + 1))
            run = partial(_deliver_next, store, copies, width)
            value, samples = measure(run, repeats)
            results.append(
                Result(
                    "W3",
                    case,
                    value,
                    unit,
                    samples,
                    note=f"mean over all deliveries of one instance; storage={STORAGE}",
                )
            )
    finally:
        store.close()
    return results


def _deliver_next(store: Store, copies: Iterator[str], width: int) -> float:
    from benchmarks.w3_fanout import _deliver_all

    return _deliver_all(store, next(copies), width)


# -- W5: throughput with worker processes ---------------------------------------------------------


def _batch(engine: Engine, prefix: str, count: int) -> float:
    """Instances per second for ``count`` fresh instances, from insertion to the last finish."""
    store = engine.store
    now = datetime.now(UTC)
    ids = clone_ids(prefix, count)
    todo = set(ids)
    with ThreadPoolExecutor(4) as pool, Stopwatch() as sw:
        list(pool.map(lambda id: store.create(_order(id, now)), ids))

        def confirm(id: str) -> bool:
            try:
                engine.send(id, "confirm")
            except (UnknownCallback, NotFound):
                return False
            return True

        while todo:
            waiting = [
                r.id
                for r in store.list(status="waiting", workflow="Order")
                if r.id in todo and r.wake_at is None and r.lease_owner is None
            ]
            done = [id for id, ok in zip(waiting, pool.map(confirm, waiting), strict=True) if ok]
            todo.difference_update(done)
            if not done:
                time.sleep(0.002)
    return count / sw.seconds


def _next_batch(engine: Engine, prefixes: Iterator[str], count: int) -> float:
    return _batch(engine, next(prefixes), count)


def _order(id: str, now: datetime) -> Record:
    state = sf.new_state(id, "Order")
    return Record(
        id=id,
        workflow="Order",
        data=Order().model_dump_json(),
        state=state.model_dump_json(),
        status=state.status.value,
        wake_at=now,
    )


def w5(settings: Settings, batch: int) -> list[Result]:
    counts = (1, 2)
    cases = [(f"{n} worker process(es), NATS", "instances/s") for n in counts]
    if settings.nats_url is None:
        return _skip(settings, "W5", cases)
    from benchmarks.w5_throughput import _Workers

    url = run_url(nats_server(), "w5")
    engine = Engine(open_store(url), workflows=[Order])
    results: list[Result] = []
    try:
        for (case, unit), processes in zip(cases, counts, strict=True):
            workers = _Workers(url, processes)
            try:
                prefixes = iter(f"n5-{processes}-{run}-" for run in range(settings.repeats + 1))
                run = partial(_next_batch, engine, prefixes, batch)
                value, samples = measure(run, settings.repeats)
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
                    case,
                    value,
                    unit,
                    samples,
                    target,
                    note=f"{batch} instances per run; storage={STORAGE}",
                )
            )
    finally:
        engine.close()
        drop(url)
    return results


# -- W6: the due index as instances grow ----------------------------------------------------------


def w6(settings: Settings, sizes: tuple[int, int]) -> list[Result]:
    """claim_due with nothing due, and a tick firing 100 due, among 1 000 / 10 000 idle."""
    cases = [(f"NATS, idle claim_due, {n:,} idle", "ms") for n in sizes]
    cases += [(f"NATS, tick firing 100, {n:,} idle", "ms") for n in sizes]
    if settings.nats_url is None:
        return _skip(settings, "W6", cases)
    results = [row for total in sizes for row in _w6_population(settings, total)]
    small, large = (r for r in results if "idle claim_due" in r.case)
    assert small.value is not None and large.value is not None
    results.append(
        Result(
            "W6",
            f"NATS, idle claim_due {sizes[1]:,} over {sizes[0]:,}",
            large.value / small.value,
            "x",
            note="flat when a tick's cost follows the due work, not the stored",
        )
    )
    return results


def _w6_population(settings: Settings, total: int) -> list[Result]:
    from benchmarks.w6_due_index import DUE, _napping, _tick

    url = run_url(nats_server(), f"w6_{total}")
    store = open_store(url)
    now = datetime.now(UTC)
    half = total // 2
    rng = random.Random(total)
    minutes = [rng.randrange(60, 24 * 60) for _ in range(total - half)]
    rounds = iter(range(settings.repeats + 1))

    def tick() -> float:
        clone(store, "n6-due-template", f"n6-due-{next(rounds)}-", DUE)
        return _tick(store, now)

    try:
        store.create(_napping("n6-idle-template", now))
        clone(store, "n6-idle-template", "n6-waiting-", half, wake=lambda i: None)
        clone(
            store,
            "n6-idle-template",
            "n6-timer-",
            total - half,
            wake=lambda i: now + timedelta(minutes=minutes[i]),
        )
        idle, idle_samples = measure(partial(_idle_claim, store, now), settings.repeats * 4)
        work = _requests(store, partial(_idle_claim, store, now))
        due = _napping("n6-due-template", now - timedelta(hours=2))
        # Leased for the run (the store has no delete), so no tick fires the template itself.
        held = dataclasses.replace(
            due, lease_owner="w6-benchmark", lease_expires=now + timedelta(hours=1)
        )
        store.create(held)
        fired, fired_samples = measure(tick, settings.repeats)
    finally:
        store.close()
        drop(url)
    note = (
        f"{half:,} waiting for a callback + {total - half:,} timers spread over 1-24 h; "
        f"storage={STORAGE}"
    )
    idle_note = (
        f"{work['requests']} index requests answering {work['subjects']} subjects, "
        f"{work['reads']} records read; {note}"
    )
    return [
        Result(
            "W6",
            f"NATS, idle claim_due, {total:,} idle",
            idle,
            "ms",
            idle_samples,
            note=idle_note,
            extra=work,
        ),
        Result(
            "W6", f"NATS, tick firing 100, {total:,} idle", fired, "ms", fired_samples, note=note
        ),
    ]


def _requests(store: Any, run: Callable[[], object]) -> dict[str, int]:
    """How many index requests, subjects in their answers and record reads ``run()`` makes."""
    client = store._client
    subjects, read = client.subjects, client.read
    counts = {"requests": 0, "subjects": 0, "reads": 0}

    async def counted_subjects(stream: str, pattern: str) -> list[str]:
        found: list[str] = await subjects(stream, pattern)
        counts["requests"] += 1
        counts["subjects"] += len(found)
        return found

    async def counted_read(id: str) -> Any:
        counts["reads"] += 1
        return await read(id)

    client.subjects, client.read = counted_subjects, counted_read
    try:
        run()
    finally:
        del client.subjects, client.read
    return counts


def _idle_claim(store: Store, now: datetime) -> float:
    with Stopwatch() as sw:
        got = store.claim_due(now, "w6-idle", timedelta(seconds=30), 100)
    assert got == [], got
    return sw.seconds * 1e3

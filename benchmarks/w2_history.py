"""W2 (resume after history) and W4 (state size).

W2: an instance that already ran K = 10 / 1 000 / 100 000 steps now waits for an event. Timed,
from a fresh `Engine` object over the SQLite store: load it, deliver the event, run the one step
that follows to completion and persist (``Engine.send``). K = 10 and 1 000 are built by running
them through the engine; K = 100 000 by running it in memory and storing the record through the
store (the same JSON the engine would have written). Every repetition gets its own copy, and the
deliveries go round the K's in turn, so a slow spell of the disk hits every K alike.

W4: bytes stored (data + state JSON) for the W2 instance at each K, and for the W3 instance with
100 (in quick mode fewer) threads waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from statistics import median

import stmtflow as sf
from benchmarks import nats_bench
from benchmarks.db import clone_ids, sqlite_clone, template_record, warm_disk
from benchmarks.flows import FanOut, History
from benchmarks.harness import Result, Settings, Stopwatch, Target
from stmtflow.runtime import Engine
from stmtflow.stores import Store, open_store

DELIVERIES_PER_REPEAT = 4
"""One delivery takes about a millisecond, so W2 takes more samples than other workloads."""

ENGINE_BUILT_LIMIT = 1000
"""Histories up to this K are built through the engine (one commit per step)."""


def history_sizes(settings: Settings) -> tuple[int, ...]:
    return (10, 100, 1000) if settings.quick else (10, 1000, 100_000)


def build_history(store: Store, k: int, id: str) -> None:
    """Store instance ``id`` of `History` waiting for ``go`` after ``k`` steps."""
    if k <= ENGINE_BUILT_LIMIT:
        inst = Engine(store, workflows=[History]).start(History, {"target": k}, id=id)
        assert inst.status is sf.WorkflowStatus.WAITING and inst.data.count == k  # type: ignore[attr-defined]
        return
    wf, state = History(target=k), sf.new_state(id, "History")
    sf.resume(wf, state, max_steps=k + 10, now=datetime.now(UTC))
    assert state.status is sf.WorkflowStatus.WAITING and wf.count == k
    store.create(template_record(wf, state, "History"))


def _deliver(store: Store, id: str) -> float:
    """ms to deliver ``go`` to ``id`` from a fresh engine and persist the finished instance."""
    with Stopwatch() as sw:
        engine = Engine(store, workflows=[History])
        engine.send(id, "go")
    inst = engine.get(id)
    assert inst.status is sf.WorkflowStatus.FINISHED and inst.data.done  # type: ignore[attr-defined]
    return sw.seconds * 1e3


def w2(settings: Settings) -> list[Result]:
    """Every K is built and copied first; then the deliveries go round the K's in turn.

    Flat means K = 100 000 costs what K = 10 does at the same moment: this disk's commits vary
    from one second to the next (a slow spell can double a delivery for seconds), so measuring
    each K in a block of its own compared the spells more than the K's.
    """
    path = settings.workdir / "w2.db"
    store = open_store(f"sqlite:///{path}")
    sizes = history_sizes(settings)
    runs = settings.repeats * DELIVERIES_PER_REPEAT
    samples: dict[int, list[float]] = {k: [] for k in sizes}
    try:
        copies = {}
        for k in sizes:
            template = f"hist-{k}-template"
            build_history(store, k, template)
            copies[k] = iter(clone_ids(f"hist-{k}-", runs + 1))
            sqlite_clone(str(path), template, f"hist-{k}-", runs + 1)
        warm_disk(settings.workdir, settings.warm_seconds)
        for _ in range(runs + 1):  # the first round warms up
            for k in sizes:
                samples[k].append(_deliver(store, next(copies[k])))
    finally:
        store.close()
    results = [
        Result(
            "W2",
            f"K={k}: load, deliver, 1 step, persist",
            median(samples[k][1:]),
            "ms",
            samples[k][1:],
            Target("≤ 1 ms", 1.0),
            note="engine-built" if k <= ENGINE_BUILT_LIMIT else "built in memory",
        )
        for k in sizes
    ]
    first, last = sizes[0], sizes[-1]
    paired = [b / a for a, b in zip(samples[first][1:], samples[last][1:], strict=True)]
    results.append(
        Result(
            "W2",
            f"K={last} over K={first} (flat)",
            median(samples[last][1:]) / median(samples[first][1:]),
            "x",
            target=Target("≤ 1.2x", 1.2),
            note=f"ratio of medians, K's in turn (median of paired ratios {median(paired):.2f})",
            extra={"paired_ratios": paired},
        )
    )
    results += nats_bench.w2(settings, sizes, runs)
    return results


def _stored_bytes(store: Store, id: str) -> int:
    rec = store.get(id)
    return len(rec.data.encode()) + len(rec.state.encode())


def fanout_waiting(width: int, id: str) -> tuple[FanOut, sf.State]:
    """A `FanOut` instance, run in memory until its ``width`` threads all wait."""
    wf, state = FanOut(width=width), sf.new_state(id, "FanOut")
    sf.resume(wf, state, max_steps=width + 10, now=datetime.now(UTC))
    assert state.status is sf.WorkflowStatus.WAITING and len(state.threads) == width + 1
    return wf, state


def w4(settings: Settings) -> list[Result]:
    store = open_store("memory://")
    results = []
    sizes: dict[int, int] = {}
    for k in history_sizes(settings):
        wf, state = History(target=k), sf.new_state(f"hist-{k}", "History")
        sf.resume(wf, state, max_steps=k + 10, now=datetime.now(UTC))
        store.create(template_record(wf, state, "History"))
        sizes[k] = _stored_bytes(store, f"hist-{k}")
        target = Target("≤ 4096 bytes", 4096) if k == 1000 else None
        results.append(Result("W4", f"W2 instance at K={k}", sizes[k], "bytes", [sizes[k]], target))
    last = history_sizes(settings)[-1]
    results.append(
        Result(
            "W4",
            f"growth from K=10 to K={last}",
            sizes[last] - sizes[10],
            "bytes",
            target=Target("≤ 64 bytes", 64),
            note="flat: only the digits of the counters may grow",
        )
    )
    width = 20 if settings.quick else 100
    store.create(template_record(*fanout_waiting(width, "fanout"), "FanOut"))
    size = _stored_bytes(store, "fanout")
    one = fanout_waiting(1, "fanout-1")
    store.create(template_record(*one, "FanOut"))
    per_thread = (size - _stored_bytes(store, "fanout-1")) / (width - 1)
    results.append(
        Result(
            "W4",
            f"W3 instance, {width} threads waiting",
            size,
            "bytes",
            [size],
            note=f"{per_thread:.0f} bytes per waiting thread",
            extra={"bytes_per_thread": per_thread},
        )
    )
    return results

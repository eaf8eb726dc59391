"""W3 (fan-out): 100 and 1 000 threads each waiting for its own event, all delivered one by one.

The instance (`FanOut`) starts its threads from one ``Go`` in a loop, each with its own thread
id; thread ``t<i>`` waits for event ``ping`` armed for it alone, so each delivery names the
thread (``Engine.send(id, "ping", thread_id="t<i>")``). The instance is built in memory until
every thread waits, stored through the store, and copied once per repetition. Each delivery is a
full engine unit on SQLite: claim, load, deliver, persist, resume, persist, release. The figure
is the mean over all deliveries of one copy (the state shrinks as threads end).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import stmtflow as sf
from benchmarks import nats_bench
from benchmarks.db import clone_ids, sqlite_clone, template_record, warm_disk
from benchmarks.flows import FanOut
from benchmarks.harness import Result, Settings, Stopwatch, Target, measure
from benchmarks.w2_history import fanout_waiting
from stmtflow.runtime import Engine
from stmtflow.stores import Store, open_store


def widths(settings: Settings) -> tuple[int, int]:
    return (10, 100) if settings.quick else (100, 1000)


def _deliver_all(store: Store, id: str, width: int) -> float:
    """µs per delivery, delivering every thread's event of instance ``id``."""
    engine = Engine(store, workflows=[FanOut])
    with Stopwatch() as sw:
        for i in range(width):
            engine.send(id, "ping", thread_id=f"t{i}")
    inst = engine.get(id)
    assert inst.status is sf.WorkflowStatus.FINISHED and inst.data.received == width  # type: ignore[attr-defined]
    return sw.seconds / width * 1e6


def _deliver_next(store: Store, copies: Iterator[str], width: int) -> float:
    """`_deliver_all` on the next copy of the instance."""
    return _deliver_all(store, next(copies), width)


def w3(settings: Settings) -> list[Result]:
    path = settings.workdir / "w3.db"
    store = open_store(f"sqlite:///{path}")
    results: list[Result] = []
    small, large = widths(settings)
    try:
        for width in (small, large):
            # The large case costs seconds per run: fewer repeats there.
            repeats = settings.repeats if width == small else max(1, settings.repeats // 2)
            template = f"fanout-{width}-template"
            store.create(template_record(*fanout_waiting(width, template), "FanOut"))
            copies = iter(clone_ids(f"fanout-{width}-", repeats + 1))
            sqlite_clone(str(path), template, f"fanout-{width}-", repeats + 1)
            warm_disk(settings.workdir, settings.warm_seconds)
            value, samples = measure(partial(_deliver_next, store, copies, width), repeats)
            target = (
                Target("≤ 300 µs", 300.0)
                if width == small
                else Target(f"≤ 1.5x {small} threads", 1.5, base=results[0].value)
            )
            results.append(
                Result(
                    "W3",
                    f"{width} threads waiting, SQLite",
                    value,
                    "µs/delivery",
                    samples,
                    target,
                    note="mean over all deliveries of one instance",
                )
            )
    finally:
        store.close()
    results += nats_bench.w3(settings, (small, large))
    return results

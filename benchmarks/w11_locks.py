"""W11 (locks): what a `Lock` costs an instance that passes through it, on every server store.

N instances of one flow are started, then one engine ticks until the last one started finished
(checked after each tick; every instance is checked after the clock stopped); the figure is the
wall time per instance, starts included. Two flows per store:

- **through a lock**: `Lock("pay", "acct", Step("work"))` with ``limit=1``, every instance on
  the same key, so they queue and each release grants the next (the grant is a message that
  makes the waiter due);
- **a zero sleep instead**: `Sleep("wait", 0)` then the same step: the same start, one claimed
  unit per instance and the same step, without the lock rows, the grant and the release.

The difference is the lock's own cost: on SQLite and PostgreSQL the rows and grants in the
write's transaction, on Redis the queue in the write's script, on NATS the settle of the key's
queue after the write (reads, compare-and-sets and the grant's append: docs/stores.md).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from itertools import count

import stmtflow as sf
from benchmarks.harness import Result, Settings, Stopwatch, measure, skipped
from stmtflow.runtime import Engine


class Guarded(sf.WorkflowState):
    """One step inside a lock every instance shares."""

    def definition(self) -> sf.Section:
        return sf.S(sf.Lock("pay", "acct", sf.Step("work", lambda: None)))


class Slept(sf.WorkflowState):
    """The same step after a zero sleep (one claimed unit, no lock)."""

    def definition(self) -> sf.Section:
        return sf.S(sf.Sleep("wait", timedelta(0)), sf.Step("work", lambda: None))


_ROUNDS = count()


def _round(url: str, flow: type[sf.WorkflowState], n: int) -> float:
    """ms per instance: start ``n`` instances of ``flow``, tick until all finished."""
    prefix = f"{flow.__name__}-{next(_ROUNDS)}"
    ids = [f"{prefix}-{i}" for i in range(n)]
    with Engine(url, workflows=[Guarded, Slept]) as engine:
        with Stopwatch() as sw:
            for id in ids:
                engine.start(flow, id=id)
            for _ in range(50 * n):  # the last one started is the last one granted
                engine.tick()
                if engine.store.get(ids[-1]).status == "finished":
                    break
        left = [id for id in ids if engine.store.get(id).status != "finished"]
        assert not left, f"{len(left)} instances of {flow.__name__} did not finish"
    return sw.seconds * 1e3 / n


def _rows(store: str, url: str, settings: Settings) -> list[Result]:
    n = 5 if settings.quick else 50
    rows = []
    for flow, what in ((Guarded, "through one lock (limit 1)"), (Slept, "a zero sleep instead")):
        value, samples = measure(partial(_round, url, flow, n), settings.repeats)
        rows.append(
            Result(
                "W11",
                f"{store}, {n} instances, {what}: per instance",
                value,
                "ms",
                samples,
                note="one engine ticking; starts included",
            )
        )
    return rows


def w11(settings: Settings) -> list[Result]:
    rows = _rows("SQLite", f"sqlite:///{settings.workdir / 'w11.db'}", settings)
    servers = (
        ("PostgreSQL", settings.pg_url, settings.pg_skip),
        ("Redis", settings.redis_url, settings.redis_skip),
        ("NATS", settings.nats_url, settings.nats_skip),
    )
    for store, url, why in servers:
        if url is None:
            rows.append(skipped("W11", store, "ms", why or f"no {store}"))
        else:
            rows += _rows(store, url, settings)
    return rows

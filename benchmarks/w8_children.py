"""W8 (child workflows): a parent that runs ``n`` ``Call``s of a one-step child, in turn.

(Issue 15 calls this workload W7; the pending-inputs workload took that name first.)

`benchmarks.flows.Caller` loops over ``Call("c", OneStep)``: each call arms the child's event
(the child's record is created in that commit), the child runs its step and posts its result to
the parent's inbox with its last write, and the parent takes it and moves on. ``Engine.start``
does all of it in one call (the engine runs the instances a unit touched before it returns),
so the time of the start over ``n`` is the cost of one child, commits included. The parent's
stored bytes (data and state) show that its record does not grow with the children it ran.
"""

from __future__ import annotations

from benchmarks.flows import Caller, OneStep
from benchmarks.harness import Result, Settings, Stopwatch, Target, skipped
from stmtflow.runtime import Engine
from stmtflow.stores import open_store


def sizes(settings: Settings) -> tuple[int, ...]:
    return (10, 30) if settings.quick else (100, 1_000, 10_000)


def _run(url: str, n: int) -> tuple[float, int, int]:
    """(ms per child, parent bytes stored, stored instances) for one parent of ``n`` calls."""
    with Engine(open_store(url), workflows=[Caller, OneStep]) as engine:
        with Stopwatch() as sw:
            inst = engine.start(Caller, {"n": n}, id=f"caller-{n}")
        assert inst.data.done == n and inst.data.total == n * (n - 1)  # type: ignore[attr-defined]
        rec = engine.store.get(inst.id)
        return sw.seconds * 1e3 / n, len(rec.data) + len(rec.state), len(engine.children(inst.id))


def _rows(store: str, url_for: dict[int, str], settings: Settings) -> list[Result]:
    results: list[Result] = []
    base: float | None = None
    for n in sizes(settings):
        per_child, parent_bytes, children = _run(url_for[n], n)
        assert children == n
        first = sizes(settings)[0]
        target = None if base is None else Target(f"≤ 1.3x at {first:,}", 1.3, base=base)
        base = per_child if base is None else base
        results.append(
            Result(
                "W8",
                f"{store}, {n:,} Calls of a one-step child: per child",
                per_child,
                "ms",
                [per_child],
                target,
                note="one run",
            )
        )
        results.append(
            Result("W8", f"{store}, {n:,} Calls: parent bytes stored", parent_bytes, "bytes")
        )
    return results


def w8(settings: Settings) -> list[Result]:
    lite = {n: f"sqlite:///{settings.workdir / f'w8-{n}.db'}" for n in sizes(settings)}
    results = _rows("SQLite", lite, settings)
    if settings.pg_url is None:
        return [*results, skipped("W8", "PostgreSQL", "ms", settings.pg_skip or "")]
    return results + _rows("PostgreSQL", dict.fromkeys(sizes(settings), settings.pg_url), settings)

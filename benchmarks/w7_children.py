"""W7 (child workflows): a parent that runs ``n`` ``Call``s of a one-step child (issue 15's W7).

Two parents: `benchmarks.flows.Caller` loops over ``Call("c", OneStep)``, one call at a time;
`benchmarks.flows.FanCaller` runs a ``ForEach`` over ``n`` items, each item's thread one
``Call``, at most 10 alive at once. Each call arms the child's event (the child's record is
created in that commit), the child runs its step and posts its result to the parent's inbox with
its last write, and the parent takes it and moves on. ``Engine.start`` does all of it in one call
(the engine runs the instances a unit touched before it returns), so the time of the start over
``n`` is the cost of one child, commits included.

Parent bytes: the largest the parent's data and state JSON grew during the run (measured in a
run of its own, on the memory store, from every checkpoint of the parent), and what is stored
when it finished. Run on SQLite, PostgreSQL, Redis and NATS (each server store when reachable).
"""

from __future__ import annotations

from typing import Any

from benchmarks import db, dbos_children, nats_bench
from benchmarks.flows import Caller, FanCaller, OneStep
from benchmarks.harness import Result, Settings, Stopwatch, Target, skipped
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.runtime import Engine
from stmtflow.state import CheckpointType, State, dump_state
from stmtflow.stores import open_store

SHAPES: dict[str, type[WorkflowState]] = {"loop of Calls": Caller, "ForEach of Calls": FanCaller}


def sizes(settings: Settings) -> tuple[int, ...]:
    return (10, 30) if settings.quick else (100, 1_000, 10_000)


def _run(url: str, parent: type[WorkflowState], n: int) -> tuple[float, int]:
    """(ms per child, parent bytes stored at the end) for one parent of ``n`` calls."""
    with Engine(open_store(url), workflows=[parent, OneStep]) as engine:
        id = f"{parent.__name__}-{n}"
        with Stopwatch() as sw:
            inst = engine.start(parent, {"n": n}, id=id)
        data: Any = inst.data
        assert data.done == n and data.total == n * (n - 1), (data.done, data.total)
        assert len(engine.children(id)) == n
        rec = engine.store.get(id)
        return sw.seconds * 1e3 / n, len(rec.data) + len(rec.state)


def _peak_bytes(parent: type[WorkflowState], n: int) -> int:
    """The largest the parent's data and state JSON were at any of its checkpoints."""
    peak = 0
    id = f"{parent.__name__}-{n}"

    def observe(kind: CheckpointType, wf: WorkflowState, state: State) -> None:
        nonlocal peak
        if state.id == id:
            peak = max(peak, len(wf.model_dump_json()) + len(dump_state(state)))

    with Engine("memory://", workflows=[parent, OneStep], on_checkpoint=observe) as engine:
        engine.start(parent, {"n": n}, id=id)
    return peak


def _rows(store: str, url_for: dict[int, str], settings: Settings) -> list[Result]:
    results: list[Result] = []
    for shape, parent in SHAPES.items():
        base: float | None = None
        for n in sizes(settings):
            per_child, stored = _run(url_for[n], parent, n)
            first = sizes(settings)[0]
            target = None if base is None else Target(f"≤ 1.3x at {first:,}", 1.3, base=base)
            base = per_child if base is None else base
            case = f"{store}, {shape}, n = {n:,}: per child"
            results.append(Result("W7", case, per_child, "ms", [per_child], target, "one run"))
            if store == "SQLite":  # the bytes do not depend on the store
                peak = _peak_bytes(parent, n)
                case = f"{shape}, n = {n:,}: parent bytes, peak (stored at the end: {stored})"
                results.append(Result("W7", case, peak, "bytes"))
    return results


def w7(settings: Settings) -> list[Result]:
    lite = {n: f"sqlite:///{settings.workdir / f'w7-{n}.db'}" for n in sizes(settings)}
    results = _rows("SQLite", lite, settings) + dbos_children.rows(settings)
    servers = (
        ("PostgreSQL", settings.pg_url, settings.pg_skip, None),
        ("Redis", settings.redis_url, settings.redis_skip, db.redis_delete),
        ("NATS", settings.nats_url, settings.nats_skip, nats_bench.drop),
    )
    for store, url, why, clear in servers:
        if url is None:
            results.append(skipped("W7", store, "ms", why or ""))
            continue
        try:
            results += _rows(store, dict.fromkeys(sizes(settings), url), settings)
        finally:
            if clear is not None:
                clear(url)
    return results

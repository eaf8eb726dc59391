"""YAML DAGs: how much independent steps gain from running in parallel, and the cost per step.

``python -m benchmarks.dag_bench [--quick]`` prints two tables (it is not one of the numbered
workloads of ``python -m benchmarks``):

1. **Parallel gain**: a DAG of N independent steps whose handlers each sleep 20 ms, then one
   step depending on all of them, run through the Engine on SQLite. Serial would take about
   N * 20 ms; the figure is the wall time of the whole run and that ratio.
2. **Cost per step**: a chain of N steps with no-op handlers (each waits for the one before,
   so nothing overlaps), in memory and on SQLite, at 100 and 2 000 steps: the time per step,
   everything included (starting the step's thread, the step, its checkpoints, the pool
   hand-off), and the process's CPU time per step (wall time on a shared machine is mostly
   other processes' turn). A step's thread starts when its dependencies settled, so the cost
   per step stays about flat as the DAG grows.

Each row is the median of 5 runs (3 with ``--quick``) on a fresh store.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import stmtflow as sf
from stmtflow import dag
from stmtflow.runtime import Engine

SLEEP = 0.02


def _wide(width: int) -> type[dag.DagWorkflow]:
    steps = [f"  - {{id: s{i}, handler: nap}}" for i in range(width)]
    deps = ", ".join(f"s{i}" for i in range(width))
    steps.append(f"  - {{id: done, handler: count, depends_on: [{deps}]}}")
    return dag.load(
        "name: Wide\nsteps:\n" + "\n".join(steps),
        handlers={"nap": lambda inputs: time.sleep(SLEEP), "count": lambda inputs: len(inputs)},
    )


def _chain(length: int) -> type[dag.DagWorkflow]:
    steps = ["  - {id: s0, handler: noop}"]
    steps += [f"  - {{id: s{i}, handler: noop, depends_on: [s{i - 1}]}}" for i in range(1, length)]
    return dag.load("name: Chain\nsteps:\n" + "\n".join(steps), handlers={"noop": lambda i: 1})


def _run_once(cls: type[sf.WorkflowState], url: str) -> tuple[float, float]:
    """Wall time and process CPU time of one run."""
    with Engine(url, [cls]) as engine:
        began, cpu = time.perf_counter(), time.process_time()
        inst = engine.start(cls, id="bench")
        took, cpu = time.perf_counter() - began, time.process_time() - cpu
    assert inst.status is sf.WorkflowStatus.FINISHED, inst.error
    return took, cpu


def _medians(cls: type[sf.WorkflowState], store: str, runs: int) -> tuple[float, float]:
    walls, cpus = [], []
    for run in range(runs):
        if store == "memory":
            url = "memory://"
        else:
            url = f"sqlite:///{Path(tempfile.mkdtemp()) / f'dag{run}.db'}"
        wall, cpu = _run_once(cls, url)
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else 5
    results: dict[str, Any] = {"parallel": [], "per_step": []}
    print("parallel gain (handlers sleep 20 ms; SQLite)")
    print(f"{'steps':>6} {'serial ms':>10} {'wall ms':>9} {'speed-up':>9}")
    for width in (4, 16) if args.quick else (4, 16, 32):
        wall, _ = _medians(_wide(width), "sqlite", runs)
        serial = width * SLEEP
        results["parallel"].append({"steps": width, "wall_s": wall, "speedup": serial / wall})
        print(f"{width:>6} {serial * 1000:>10.0f} {wall * 1000:>9.1f} {serial / wall:>8.1f}x")
    print()
    print("cost per step (a chain of no-op handlers)")
    print(f"{'store':>7} {'steps':>6} {'total ms':>9} {'per step µs':>12} {'CPU µs/step':>12}")
    for store in ("memory", "sqlite"):
        for length in (20, 100) if args.quick else (100, 2000):
            took, cpu = _medians(_chain(length), store, runs if length <= 400 else 1)
            row = {"store": store, "steps": length, "total_s": took, "cpu_s": cpu}
            results["per_step"].append(row)
            print(
                f"{store:>7} {length:>6} {took * 1000:>9.1f} {took / length * 1e6:>12.0f}"
                f" {cpu / length * 1e6:>12.0f}"
            )
    return results


if __name__ == "__main__":
    main()

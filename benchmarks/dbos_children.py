"""W7's comparison: DBOS child workflows on SQLite, when DBOS is installed (``pip install dbos``).

DBOS keeps its own durable state in a "system database", which can be a SQLite file, so it runs
here without a server. The parent mirrors `benchmarks.flows.Caller`: a workflow that runs ``n``
child workflows one after the other, each one step that doubles its argument, and sums their
results. DBOS has two ways to run a child: calling the child workflow from the parent (DBOS runs
it in the parent's thread, as a child workflow with an id derived from the parent's) and
``DBOS.start_workflow(child, i).get_result()`` (started on a thread of its own, the parent
waiting for its result), so both are timed.

Each size runs in a process of its own (``python -m benchmarks.dbos_children N PATH``): DBOS is
one global object per process, launched once and destroyed at the end. The figures are the
wall time of the parent call over ``n``, as for our W7.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import Result, Settings, skipped

SHAPES = ("child called from the parent", "start_workflow + get_result")


def installed() -> bool:
    """True when the ``dbos`` package can be imported."""
    return importlib.util.find_spec("dbos") is not None


def sizes(settings: Settings) -> tuple[int, ...]:
    """DBOS runs to 1 000 only: at some 20-60 ms a child here, 10 000 would take minutes."""
    return (10, 30) if settings.quick else (100, 1_000)


def rows(settings: Settings) -> list[Result]:
    """W7's DBOS rows: ms per child for each shape and size, or one skipped row."""
    if not installed():
        return [skipped("W7", "DBOS (SQLite), per child", "ms", "dbos is not installed")]
    results: list[Result] = []
    for n in sizes(settings):
        path = settings.workdir / f"dbos-{n}.sqlite"
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.dbos_children", str(n), str(path)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=True,
        )
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        for shape in SHAPES:
            case = f"DBOS (SQLite), {shape}, n = {n:,}: per child"
            results.append(
                Result("W7", case, figures[shape], "ms", [figures[shape]], None, "one run")
            )
    return results


def _measure(n: int, path: Path) -> dict[str, float]:
    """Launch DBOS on the SQLite file ``path``, time both parents over ``n`` children."""
    dbos: Any = importlib.import_module("dbos")
    app = dbos.DBOS
    path.unlink(missing_ok=True)
    logging.getLogger("dbos").setLevel(logging.WARNING)
    config = {
        "name": "stmtflow-w7",
        "system_database_url": f"sqlite:///{path}",
        "run_admin_server": False,
        "log_level": "WARNING",
    }
    app(config=config)

    @app.step()  # type: ignore[untyped-decorator]
    def double(x: int) -> int:
        return 2 * x

    @app.workflow()  # type: ignore[untyped-decorator]
    def child(x: int) -> int:
        return int(double(x))

    @app.workflow()  # type: ignore[untyped-decorator]
    def called(n: int) -> int:
        return sum(child(i) for i in range(n))

    @app.workflow()  # type: ignore[untyped-decorator]
    def started(n: int) -> int:
        return sum(app.start_workflow(child, i).get_result() for i in range(n))

    app.launch()
    try:
        figures: dict[str, float] = {}
        for shape, parent in zip(SHAPES, (called, started), strict=True):
            begin = time.perf_counter()
            total = parent(n)
            figures[shape] = (time.perf_counter() - begin) * 1e3 / n
            assert total == n * (n - 1), total
        return figures
    finally:
        app.destroy()


if __name__ == "__main__":
    print(json.dumps(_measure(int(sys.argv[1]), Path(sys.argv[2]))))

"""W8 (inputs index): ``engine.inputs()`` over many instances waiting for a person.

Every instance is a `Review` waiting on its ``Ask``, assigned to one of 100 reviewers. Set-up:
the engine starts one instance per reviewer (so the store writes its record and its input row
itself), then SQL clones each (`benchmarks.db`) with its input row, the instance id substituted.
Timed: listing every question, and one reviewer's (a hundredth of them). For contrast, on
SQLite, the same answer found the way an index spares: every waiting record loaded and its
pending events read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from benchmarks.db import clone_ids, pg_clone, pg_connect, pg_truncate, sqlite_clone
from benchmarks.flows import Review
from benchmarks.harness import Result, Settings, Stopwatch, measure, skipped
from stmtflow.runtime import Engine

REVIEWERS = 100

_SQLITE_CLONE_INPUTS = """
INSERT INTO stmtflow_inputs (instance_id, event, thread_id, prompt, assignee, input_schema,
    asked_at, deadline, workflow)
SELECT :id, event, thread_id, prompt, assignee, input_schema, asked_at, deadline, workflow
FROM stmtflow_inputs WHERE instance_id = :template
"""

_PG_CLONE_INPUTS = """
INSERT INTO stmtflow_inputs (instance_id, event, thread_id, prompt, assignee, input_schema,
    asked_at, deadline, workflow)
SELECT i.id, t.event, t.thread_id, t.prompt, t.assignee, t.input_schema, t.asked_at, t.deadline,
    t.workflow
FROM unnest(%(ids)s::text[]) AS i(id), stmtflow_inputs AS t WHERE t.instance_id = %(template)s
"""


def _populate(
    engine: Engine,
    total: int,
    clone: Callable[[str, str, int], None],
    clone_inputs: Callable[[str, list[str]], None],
) -> None:
    """``total`` waiting reviews, spread evenly over `REVIEWERS` reviewers."""
    each = total // REVIEWERS - 1  # copies of each reviewer's first instance
    for n in range(REVIEWERS):
        template = f"tpl-{n:02d}"
        engine.start(Review, {"reviewer": f"p-{n:02d}"}, id=template)
        prefix = f"r-{n:02d}-"
        clone(template, prefix, each)
        clone_inputs(template, clone_ids(prefix, each))
    assert len(engine.inputs()) == total


def _timed(engine: Engine, expected: int, assignee: str | None = None) -> float:
    with Stopwatch() as sw:
        rows = engine.inputs(assignee=assignee)
    assert len(rows) == expected, f"inputs() gave {len(rows)} rows, expected {expected}"
    return sw.seconds * 1e3


def _scan(engine: Engine, expected: int) -> float:
    """ms to find the same questions without the index: every waiting record, its events."""
    with Stopwatch() as sw:
        found = [
            (inst.id, event.name)
            for inst in engine.list(status="waiting")
            for event in engine.pending(inst.id)
            if event.prompt is not None
        ]
    assert len(found) == expected
    return sw.seconds * 1e3


def _rows(store: str, engine: Engine, total: int, settings: Settings, scan: bool) -> list[Result]:
    listed = total
    one = listed // REVIEWERS
    every, every_samples = measure(lambda: _timed(engine, listed), settings.repeats)
    mine, mine_samples = measure(lambda: _timed(engine, one, "p-42"), settings.repeats)
    results = [
        Result("W8", f"{store}, {listed:,} waiting: inputs()", every, "ms", every_samples),
        Result(
            "W8",
            f"{store}, {listed:,} waiting: inputs(assignee=...) ({one} rows)",
            mine,
            "ms",
            mine_samples,
        ),
    ]
    if scan:
        value, samples = measure(lambda: _scan(engine, listed), 1, warmup=0)
        note = f"what the index saves: {value / every:.0f}x inputs()"
        results.append(
            Result(
                "W8",
                f"{store}, {listed:,} waiting: a scan instead",
                value,
                "ms",
                samples,
                note=note,
            )
        )
    return results


def sizes(settings: Settings) -> int:
    return 1_000 if settings.quick else 10_000


def w8(settings: Settings) -> list[Result]:
    total = sizes(settings)
    path = settings.workdir / f"w8-{total}.db"
    path.unlink(missing_ok=True)

    def lite_inputs(template: str, ids: list[str]) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_SQLITE_CLONE_INPUTS, [{"id": i, "template": template} for i in ids])
            conn.execute("COMMIT")
        finally:
            conn.close()

    with Engine(f"sqlite:///{path}", workflows=[Review], clock=lambda: datetime.now(UTC)) as lite:
        _populate(lite, total, lambda t, p, n: sqlite_clone(str(path), t, p, n), lite_inputs)
        results = _rows("SQLite", lite, total, settings, scan=True)
    if settings.pg_url is None:
        return [
            *results,
            skipped("W8", f"PostgreSQL, {total:,} waiting", "ms", settings.pg_skip or ""),
        ]
    url = settings.pg_url
    with Engine(url, workflows=[Review]) as pg:
        pg_truncate(url)

        def pg_inputs(template: str, ids: list[str]) -> None:
            with pg_connect(url) as conn:
                conn.execute(_PG_CLONE_INPUTS, {"ids": ids, "template": template})

        _populate(pg, total, lambda t, p, n: pg_clone(url, t, p, n), pg_inputs)
        with pg_connect(url) as conn:
            conn.execute("ANALYZE stmtflow_inputs")
        results += _rows("PostgreSQL", pg, total, settings, scan=False)
    return results

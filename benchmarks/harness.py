"""What every workload shares: timing, results with their targets, and the run's settings.

A workload measures figures and returns `Result` rows. A row carries its median, the samples it
came from and, when the issue sets one, its `Target`; the table and the JSON are built from rows.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Settings:
    """How one run of the harness is configured.

    Attributes:
        quick: smoke mode: tiny sizes, one repeat (CI runs this so the harness never rots).
        repeats: measured runs per figure (after one warm-up run).
        workdir: where the SQLite files go (the disk whose commit cost is measured).
        pg_url: the PostgreSQL server (its schema is the run's own), or None when unreachable.
        pg_skip: why PostgreSQL workloads are skipped (None when they run).
        redis_url: the Redis server with the run's own key prefix, or None when unreachable.
        redis_skip: why the Redis rows are skipped (None when they run).
        nats_url: the NATS store of the run (its own bucket), or None when unreachable.
        nats_skip: why the NATS rows are skipped (None when they run).
    """

    quick: bool
    repeats: int
    workdir: Path
    pg_url: str | None
    pg_skip: str | None
    redis_url: str | None = None
    redis_skip: str | None = None
    nats_url: str | None = None
    nats_skip: str | None = None

    @property
    def warm_seconds(self) -> float:
        """How long the disk commits before a disk-bound measurement (`benchmarks.db.warm_disk`;
        a smoke run only checks that it works)."""
        return 0.1 if self.quick else 1.5


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the issue: ``value`` compared with ``limit`` (times ``base`` when relative).

    Attributes:
        text: how the table shows it, e.g. "<= 10 us" or "<= 1.2x floor".
        limit: the bound: absolute in the row's unit, or a factor of ``base``.
        base: the reference value for a relative target (None: absolute).
        higher_is_better: True when the value must reach the bound rather than stay under it.
    """

    text: str
    limit: float
    base: float | None = None
    higher_is_better: bool = False

    def ratio(self, value: float) -> float:
        """``value`` over the base (relative targets) or over the limit (absolute ones)."""
        reference = self.base if self.base is not None else self.limit
        return value / reference if reference else float("inf")

    def met(self, value: float) -> bool:
        """Whether ``value`` reaches the goal."""
        measured = value if self.base is None else value / self.base
        return measured >= self.limit if self.higher_is_better else measured <= self.limit


@dataclass(slots=True)
class Result:
    """One measured figure (a row of the table).

    Attributes:
        workload: "W1", "W1b", ... as in the issue.
        case: what exactly was measured, e.g. "(b) engine on SQLite, per step".
        value: the median (None when the case was skipped).
        unit: "us", "ms", "bytes", "instances/s", ...
        samples: every measured run, in order.
        target: the issue's goal for this figure, if any.
        note: context for the reader (what the figure includes, why it was skipped).
        extra: further numbers kept in the JSON (sizes, breakdowns).
    """

    workload: str
    case: str
    value: float | None
    unit: str
    samples: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.target is None or self.value is None:
            return None
        return self.target.ratio(self.value)

    @property
    def verdict(self) -> Literal["pass", "miss", "report", "skipped"]:
        if self.value is None:
            return "skipped"
        if self.target is None:
            return "report"
        return "pass" if self.target.met(self.value) else "miss"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        data["verdict"] = self.verdict
        return data


def reference_us(rounds: int = 5) -> float:
    """µs of a fixed pure-Python loop (median of ``rounds``): how fast the machine is right now.

    Shared and virtual machines change speed from minute to minute. The harness times this
    before every workload and reports its spread, so a figure can be read against the speed the
    machine had when it was measured.
    """
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        table: dict[int, int] = {}
        for i in range(20_000):
            table[i & 255] = table.get(i & 255, 0) + i
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def skipped(workload: str, case: str, unit: str, why: str) -> Result:
    """A row for a case that could not run (e.g. PostgreSQL unreachable)."""
    return Result(workload, case, None, unit, note=f"skipped: {why}")


def measure(
    run: Callable[[], float], repeats: int, *, warmup: int = 1
) -> tuple[float, list[float]]:
    """Call ``run`` (which returns one figure) ``warmup`` times, then ``repeats`` times.

    Returns the median of the measured figures and the figures themselves.
    """
    for _ in range(warmup):
        run()
    samples = [run() for _ in range(repeats)]
    return statistics.median(samples), samples


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``: wall time of the block."""

    __slots__ = ("_start", "seconds")

    def __enter__(self) -> Stopwatch:
        self.seconds = 0.0
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start

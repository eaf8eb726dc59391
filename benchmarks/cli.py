"""``python -m benchmarks``: run the workloads, print the table, optionally write JSON.

Exit status 0 when every selected workload ran (misses included: a benchmark reports, it does not
judge), 1 when one of them crashed (its rows then say why), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import db, nats_bench
from benchmarks.harness import Result, Settings, reference_us
from benchmarks.w1_sequential import w1, w1b
from benchmarks.w2_history import w2, w4
from benchmarks.w3_fanout import w3
from benchmarks.w5_throughput import w5
from benchmarks.w6_due_index import w6
from benchmarks.w7_children import w7
from benchmarks.w8_inputs import w8
from benchmarks.w9_asl import w9
from benchmarks.w10_schedules import w10
from benchmarks.w11_locks import w11
from benchmarks.w_redis import redis_w1, redis_w2, redis_w3, redis_w5


def _and(*workloads: Callable[[Settings], list[Result]]) -> Callable[[Settings], list[Result]]:
    """One workload whose rows are those of ``workloads`` (one per store), in order."""
    return lambda settings: [row for workload in workloads for row in workload(settings)]


WORKLOADS: dict[str, Callable[[Settings], list[Result]]] = {
    "W1": _and(w1, redis_w1),
    "W1b": w1b,
    "W2": _and(w2, redis_w2),
    "W3": _and(w3, redis_w3),
    "W4": w4,
    "W5": _and(w5, redis_w5),
    "W6": w6,
    "W7": w7,
    "W8": w8,
    "W9": w9,
    "W10": w10,
    "W11": w11,
}
"""Every workload of the issue, in the order they run."""

_STYLE = {"pass": "green", "miss": "bold red", "report": "cyan", "skipped": "yellow"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure stmtflow's interpreter and runtime against the targets of issue 4.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run with tiny sizes (< 60 s; CI runs it)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON here")
    parser.add_argument(
        "--only", metavar="W1,W3", help=f"run only these workloads (of {', '.join(WORKLOADS)})"
    )
    parser.add_argument(
        "--repeats", type=int, help="measured runs per figure after the warm-up (default 5; 1)"
    )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help="directory for the SQLite files, i.e. the disk measured (default: a temp dir)",
    )
    return parser


def _selected(only: str | None) -> list[str]:
    if not only:
        return list(WORKLOADS)
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    by_lower = {name.lower(): name for name in WORKLOADS}
    unknown = [name for name in wanted if name.lower() not in by_lower]
    if unknown:
        raise SystemExit(
            f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}"
        )
    chosen = {by_lower[name.lower()] for name in wanted}
    return [name for name in WORKLOADS if name in chosen]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def environment(settings: Settings) -> dict[str, Any]:
    """What the figures were measured on."""

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": db.server_version(settings.pg_url) if settings.pg_url else None,
        "redis": db.redis_info(settings.redis_url) if settings.redis_url else None,
        "psycopg": version("psycopg"),
        "nats": nats_bench.server_version(settings.nats_url) if settings.nats_url else None,
        "nats_storage": nats_bench.STORAGE if settings.nats_url else None,
        "nats-py": version("nats-py"),
        "pydantic": version("pydantic"),
        "stmtflow": version("stmtflow"),
        "commit": _git_commit(),
        "workdir": str(settings.workdir),
    }


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def _redis_line(info: dict[str, str] | None) -> str:
    if info is None:
        return "not used"
    aof = "no AOF" if info.get("appendonly") != "yes" else f"AOF {info.get('appendfsync')}"
    return f"{info['version']} ({aof})"


def render(results: list[Result], env: dict[str, Any], settings: Settings, seconds: float) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a log or a pipe: no wrapping into narrow columns
    mode = "quick (smoke sizes: figures are not comparable)" if settings.quick else "full"
    console.print(
        f"[bold]stmtflow benchmarks[/] — {mode}; median of {settings.repeats} run(s) after "
        f"a warm-up; {seconds:.0f} s"
    )
    console.print(
        f"{env['cpu']} ({env['cores']} cores, {env['machine']}), {env['os']}\n"
        f"Python {env['python']}, SQLite {env['sqlite']}, "
        f"PostgreSQL {env['postgresql'] or 'not used'}, psycopg {env['psycopg']}, "
        f"Redis {_redis_line(env['redis'])}, "
        f"NATS {env['nats'] or 'not used'} (JetStream storage={env['nats_storage']}), "
        f"pydantic {env['pydantic']}, stmtflow {env['stmtflow']} ({env['commit'] or '?'})\n"
        f"SQLite files in {env['workdir']}"
    )
    table = Table(show_lines=False)
    for column in ("Workload", "Case", "Median", "Unit", "Target", "Ratio", "Result", "Note"):
        table.add_column(column, justify="right" if column in ("Median", "Ratio") else "left")
    for r in results:
        verdict = r.verdict
        table.add_row(
            r.workload,
            r.case,
            _number(r.value),
            r.unit,
            r.target.text if r.target else "",
            "" if r.ratio is None else f"{r.ratio:.2f}",
            f"[{_STYLE[verdict]}]{verdict}[/]",
            r.note,
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = _selected(args.only)
    repeats = args.repeats or (1 if args.quick else 5)
    if repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    # A fresh directory of this run's own (inside --workdir when given, on the disk to measure),
    # so files an earlier or concurrent run left there are never reused; removed at the end.
    if args.workdir is not None:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="stmtflow-bench-", dir=args.workdir))
    server = db.pg_server()
    pg_skip = db.pg_reachable(server)
    pg_url = None if pg_skip else db.with_schema(server, db.run_schema())
    redis_server = db.redis_server()
    redis_skip = db.redis_reachable(redis_server)
    redis_url = None if redis_skip else db.with_prefix(redis_server, db.run_schema())
    nats_server = nats_bench.nats_server()
    nats_skip = nats_bench.nats_reachable(nats_server)
    nats_url = None if nats_skip else nats_bench.run_url(nats_server)
    settings = Settings(
        args.quick,
        repeats,
        workdir,
        pg_url,
        pg_skip,
        redis_url=redis_url,
        redis_skip=redis_skip,
        nats_url=nats_url,
        nats_skip=nats_skip,
    )
    results: list[Result] = []
    crashed = False
    started = time.perf_counter()
    try:
        if pg_url is not None:
            db.open_schema(pg_url)
        env = environment(settings)
        speeds: list[float] = []
        for number, name in enumerate(names, 1):
            speeds.append(reference_us())
            print(
                f"[{number}/{len(names)}] {name} (reference loop {speeds[-1]:.0f} µs, "
                f"{time.perf_counter() - started:.0f} s elapsed)",
                file=sys.stderr,
                flush=True,
            )
            try:
                results += WORKLOADS[name](settings)
            except Exception as exc:
                crashed = True
                traceback.print_exc()
                results.append(
                    Result(name, "crashed", None, "", note=f"{type(exc).__name__}: {exc}")
                )
        speeds.append(reference_us())
        results.append(
            Result(
                "machine",
                "reference loop (before each workload, and at the end)",
                statistics.median(speeds),
                "µs",
                speeds,
                note=f"min {min(speeds):.0f}, max {max(speeds):.0f}: the machine's speed drift",
            )
        )
    finally:
        if pg_url is not None:
            db.pg_drop_schema(pg_url)
        if redis_url is not None:
            db.redis_delete(redis_url)
        if nats_url is not None:
            nats_bench.drop(nats_url)
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.perf_counter() - started
    render(results, env, settings, seconds)
    if args.json:
        payload = {
            "environment": env,
            "settings": {
                "quick": settings.quick,
                "repeats": settings.repeats,
                "postgresql_skipped": pg_skip,
                "redis_skipped": redis_skip,
                "nats_skipped": nats_skip,
                "workloads": names,
            },
            "seconds": seconds,
            "results": [r.to_json() for r in results],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())

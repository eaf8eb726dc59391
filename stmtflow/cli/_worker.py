"""``stmtflow worker``: fire due timers and retries until stopped, with a live display.

A bare ``stmtflow worker`` serves every workflow type the store remembers and can import;
``stmtflow worker FILE.py:Class ...`` serves those (and remembers them). Ctrl-C or SIGTERM
finishes the current unit of work, then stops.

Example:
    >>> from click.testing import CliRunner
    >>> from stmtflow.cli import cli
    >>> args = ["--db", "memory://", "worker", "stmtflow.dsl._workflow:Nope"]
    >>> print(CliRunner().invoke(cli, args).stderr, end="")
    error: module 'stmtflow.dsl._workflow' has no class 'Nope'
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from stmtflow.cli._common import Config, console, fail, pass_config
from stmtflow.runtime import Engine, WorkerStats
from stmtflow.runtime._loader import TargetError, load_target, normalize_target

__all__ = ["worker"]


class _Display:
    """The live panel: counters, instances due now (re-read at most once a second)."""

    def __init__(self, engine: Engine, types: list[str], stats: WorkerStats) -> None:
        self.engine = engine
        self.types = types
        self.stats = stats
        self.started = time.monotonic()
        self._due = 0
        self._due_read = 0.0

    def due(self) -> int:
        if time.monotonic() - self._due_read >= 1.0:
            self._due = self.engine.due_count(datetime.now(UTC))
            self._due_read = time.monotonic()
        return self._due

    def __rich__(self) -> Table:
        s = self.stats
        grid = Table(title="stmtflow worker", title_justify="left", show_header=False)
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("serving", ", ".join(self.types))
        grid.add_row("up", f"{int(time.monotonic() - self.started)}s")
        grid.add_row("processed", str(s.processed))
        grid.add_row("fired", str(s.fired))
        grid.add_row("due now", str(self.due()))
        grid.add_row("failed", Text(str(s.failed), style="red" if s.failed else ""))
        grid.add_row("last error", s.last_error or "-")
        return grid


def _serve(engine: Engine, targets: tuple[str, ...]) -> list[str]:
    """Register the given targets, or every remembered one that imports; the type names."""
    names: list[str] = []
    if targets:
        for target in targets:
            cls = load_target(target)
            names.append(engine.register(cls, target=normalize_target(target)))
        return names
    for name, target in sorted(engine.store.targets().items()):
        try:
            cls = load_target(target)
        except TargetError as exc:
            click.echo(f"warning: not serving {name}: {exc}", err=True)
            continue
        if Engine.type_name(cls) != name:
            click.echo(f"warning: not serving {name}: {target} defines another type", err=True)
            continue
        names.append(engine.register(cls))
    if not names:
        fail("no workflow type to serve: pass TARGET (path/file.py:Class), or run one first")
    return names


def _summary(out: Console, stats: WorkerStats) -> None:
    out.print(
        f"processed {stats.processed}, fired {stats.fired}, failed {stats.failed}"
        + (f" (last error: {stats.last_error})" if stats.last_error else "")
    )


@click.command(short_help="Fire due timers and retries until stopped.")
@click.argument("targets", nargs=-1, metavar="[TARGET ...]")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--poll",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.01, 3600),
    metavar="SECONDS",
    help="How long to sleep when nothing is due.",
)
@click.option("--once", is_flag=True, help="Work off what is due now, then exit.")
@pass_config
def worker(
    cfg: Config, targets: tuple[str, ...], concurrency: int, poll: float, once: bool
) -> None:
    """Fire due timers and retries (and finish work a crashed worker left) until stopped."""
    with cfg.engine(create=bool(targets)) as engine:
        types = _serve(engine, targets)
        out = console()
        stats = WorkerStats()
        stop = threading.Event()
        if once:
            stats = engine.run_worker(
                concurrency=1, stop=stop, on_tick=lambda _: stop.set(), handle_signals=False
            )
            _summary(out, stats)
            return
        display = _Display(engine, types, stats)

        def on_tick(current: WorkerStats) -> None:
            display.stats = current

        with Live(display, console=out, refresh_per_second=4, transient=False):
            final = engine.run_worker(
                concurrency=concurrency, poll_interval=poll, stop=stop, on_tick=on_tick
            )
        if not out.is_terminal:
            out.line()
        _summary(out, final)

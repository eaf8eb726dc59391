"""``stmtflow schedule``: start workflows on a cron calendar (add, list, pause, resume, trigger,
remove, backfill). A running ``stmtflow worker`` fires them.

Example:
    >>> from click.testing import CliRunner
    >>> from stmtflow.cli import cli
    >>> CliRunner().invoke(cli, ["--db", "memory://", "schedule", "list"]).output
    'no schedules\\n'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.table import Table

from stmtflow.cli._common import Config, console, dump_json, fail, parse_json, pass_config, when
from stmtflow.errors import ScheduleError
from stmtflow.runtime import Schedule
from stmtflow.runtime._loader import load_target, normalize_target
from stmtflow.runtime._schedules import OVERLAPS

__all__ = ["parse_duration", "schedule", "schedule_json"]

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1w`` or a sum of them (``1h30m``) as a timedelta.

    Example:
        >>> parse_duration("1h30m")
        datetime.timedelta(seconds=5400)
    """
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        fail(f"bad duration {text!r} (expected e.g. 90s, 30m, 2h, 1d or 1h30m)")
    return sum((timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), timedelta(0))


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"bad time {text!r} (expected ISO 8601, e.g. 2026-01-31T02:00:00+00:00)")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def schedule_json(s: Schedule) -> dict[str, Any]:
    """A schedule as JSON-ready data: what ``schedule list --json`` prints."""
    return s.model_dump(mode="json", exclude={"pending", "version"})


@click.group(short_help="Start workflows on a cron calendar.")
def schedule() -> None:
    """Start workflows on a cron calendar; a running `stmtflow worker` fires them."""


@schedule.command("add", short_help="Add (or replace) a schedule.")
@click.argument("name")
@click.argument("target")
@click.argument("cron")
@click.option("--input", "input_", metavar="JSON", help="Each instance's data (or @file.json).")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone of CRON.")
@click.option("--overlap", type=click.Choice(OVERLAPS), default="skip", show_default=True)
@click.option("--catchup", default="0s", show_default=True, help="Run fires missed this long.")
@pass_config
def add(
    cfg: Config,
    name: str,
    target: str,
    cron: str,
    input_: str | None,
    timezone: str,
    overlap: str,
    catchup: str,
) -> None:
    """Start TARGET (file.py:Class) at every fire time of CRON, as instance NAME@TIME."""
    cls = load_target(target)
    data = parse_json(input_, "--input") if input_ is not None else None
    window = parse_duration(catchup)
    with cfg.engine(create=True) as engine:
        try:
            s = engine.schedule(
                name, cls, cron, input=data, timezone=timezone, overlap=overlap, catchup=window
            )
        except ScheduleError as exc:
            fail(str(exc))
        engine.register(cls, target=normalize_target(target))
    click.echo(f"schedule {s.name}: {s.workflow} at '{s.cron}' ({s.timezone}); next {_next(s)}")


def _next(s: Schedule) -> str:
    if s.paused:
        return "paused"
    return s.next_fire.isoformat() if s.next_fire else "never"


@schedule.command("list", short_help="List the schedules.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
@pass_config
def list_(cfg: Config, as_json: bool) -> None:
    """List every schedule: what it starts, when it fires next, what it started last."""
    with cfg.store() as store:
        from stmtflow.runtime import Engine

        rows = Engine(store).schedules()
    if as_json:
        click.echo(dump_json([schedule_json(s) for s in rows]))
        return
    if not rows:
        click.echo("no schedules")
        return
    now = datetime.now(UTC)
    table = Table(expand=False)
    for column in ("name", "workflow", "cron", "timezone", "overlap", "next", "last started"):
        table.add_column(column, overflow="fold")
    for s in rows:
        upcoming = "paused" if s.paused else when(s.next_fire, now) if s.next_fire else "never"
        table.add_row(s.name, s.workflow, s.cron, s.timezone, s.overlap, upcoming, s.last_id or "-")
    console().print(table)


@schedule.command("pause")
@click.argument("name")
@pass_config
def pause(cfg: Config, name: str) -> None:
    """Stop firing schedule NAME."""
    with cfg.engine() as engine:
        engine.pause_schedule(name)
    click.echo(f"schedule {name} paused")


@schedule.command("resume")
@click.argument("name")
@pass_config
def resume(cfg: Config, name: str) -> None:
    """Fire schedule NAME again (fires missed while paused are skipped)."""
    with cfg.engine() as engine:
        s = engine.resume_schedule(name)
    click.echo(f"schedule {name} resumed; next {_next(s)}")


@schedule.command("trigger")
@click.argument("name")
@pass_config
def trigger(cfg: Config, name: str) -> None:
    """Start schedule NAME's workflow now."""
    with cfg.engine() as engine:
        inst = engine.trigger(name)
    click.echo(f"started {inst.id} ({inst.workflow}): {inst.status.value}")


@schedule.command("remove")
@click.argument("name")
@pass_config
def remove(cfg: Config, name: str) -> None:
    """Remove schedule NAME (the instances it started are kept)."""
    with cfg.engine() as engine:
        engine.unschedule(name)
    click.echo(f"schedule {name} removed")


@schedule.command("backfill")
@click.argument("name")
@click.option("--start", "start", required=True, metavar="TIME", help="First fire time (ISO).")
@click.option("--end", "end", required=True, metavar="TIME", help="End, excluded (ISO).")
@pass_config
def backfill(cfg: Config, name: str, start: str, end: str) -> None:
    """Start every fire of NAME from --start to --end that has not run (times without an offset
    are UTC)."""
    with cfg.engine() as engine:
        try:
            ids = engine.backfill(name, _moment(start), _moment(end))
        except ScheduleError as exc:
            fail(str(exc))
    click.echo(f"{len(ids)} fire(s) of {name}: " + (", ".join(ids) if ids else "none in range"))

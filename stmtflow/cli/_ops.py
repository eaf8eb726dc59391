"""``stmtflow history``, ``rewind``, ``fork``, ``prune`` and ``stuck``: the operator's commands.

Example:
    >>> from click.testing import CliRunner
    >>> from stmtflow.cli import cli
    >>> print(CliRunner().invoke(cli, ["--db", "memory://", "prune", "--older-than", "soon"])
    ...       .stderr, end="")
    error: --older-than: 'soon' is not a duration such as 30d, 12h, 90m or 1h30m
"""

from __future__ import annotations

import re
from datetime import timedelta

import click

from stmtflow.cli._common import Config, dump_json, fail, pass_config, remembered_class
from stmtflow.runtime import HistoryEvent

__all__ = ["fork", "history", "parse_duration", "prune", "relative", "rewind", "stuck"]

_JSON_FLAG = click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(text: str, what: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``1h30m``, ``45s``, ``2w`` as a `timedelta`.

    Example:
        >>> parse_duration("1h30m", "--older-than")
        datetime.timedelta(seconds=5400)
    """
    spec = text.strip().lower()
    parts = _DURATION.findall(spec)
    if not spec or "".join(n + u for n, u in parts) != spec:
        fail(f"{what}: {text!r} is not a duration such as 30d, 12h, 90m or 1h30m")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: float(number)})
    return total


def relative(delta: timedelta) -> str:
    """A time since the start, short: ``+0.012s``, ``+4.5s``, ``+2m05s``, ``+3h04m``, ``+2d01h``.

    Example:
        >>> relative(timedelta(minutes=2, seconds=5))
        '+2m05s'
    """
    seconds = delta.total_seconds()
    if seconds < 10:
        return f"+{seconds:.3f}s"
    if seconds < 60:
        return f"+{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"+{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"+{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"+{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _what(event: HistoryEvent) -> str:
    """The event's last column: its error, else its detail."""
    if event.error:
        return event.error
    if not event.detail:
        return ""
    return ", ".join(f"{k}={v}" for k, v in event.detail.items())


def _event_json(event: HistoryEvent) -> dict[str, object]:
    return {
        "seq": event.seq,
        "at": event.at,
        "kind": event.kind,
        "thread_id": event.thread_id,
        "name": event.name,
        "attempt": event.attempt,
        "error": event.error,
        "detail": event.detail,
        "rewindable": event.snapshot is not None,
    }


@click.command(short_help="Show an instance's history as a timeline.")
@click.argument("instance_id", metavar="ID")
@_JSON_FLAG
@pass_config
def history(cfg: Config, instance_id: str, as_json: bool) -> None:
    """Print what happened to instance ID: times relative to its first kept event, threads,
    steps and events, attempts, errors. A ``*`` marks the events it can be rewound to."""
    with cfg.engine() as engine:
        rec = engine.store.get(instance_id)
        events = engine.history(instance_id)
        kept = engine.rewindable(instance_id)
    if as_json:
        shown = [dict(_event_json(e), rewindable=e.seq in kept) for e in events]
        click.echo(dump_json({"id": instance_id, "dropped": events.dropped, "events": shown}))
        return
    dropped = f", {events.dropped} older dropped" if events.dropped else ""
    click.echo(f"{instance_id} ({rec.workflow}, {rec.status}): {len(events)} events{dropped}")
    if not events:
        return
    start = events[0].at
    click.echo(f"  started {start.isoformat(timespec='seconds')}")
    rows = [
        (
            f"{e.seq}{'*' if e.seq in kept else ' '}",
            relative(e.at - start),
            e.kind,
            e.thread_id or "",
            e.name or "",
            "" if e.attempt is None else f"#{e.attempt}",
            _what(e),
        )
        for e in events
    ]
    header = ("seq", "time", "kind", "thread", "name", "try", "error / detail")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(6)]
    for row in [header, *rows]:
        cells = [row[i].rjust(widths[i]) if i < 2 else row[i].ljust(widths[i]) for i in range(6)]
        click.echo(("  " + "  ".join(cells) + "  " + row[6]).rstrip())


@click.command(short_help="Put an instance back as it was after a history event.")
@click.argument("instance_id", metavar="ID")
@click.option("--to", "to", type=int, required=True, metavar="SEQ", help="The history event.")
@pass_config
def rewind(cfg: Config, instance_id: str, to: int) -> None:
    """Restore instance ID's data and state as they stood right after history event SEQ
    (see ``stmtflow history ID``); a worker carries on from there."""
    with cfg.engine() as engine:
        remembered_class(engine, engine.store.get(instance_id))
        inst = engine.rewind(instance_id, to=to)
        click.echo(f"{inst.id}: rewound to event {to}, now {inst.status.value}")


@click.command(short_help="Start a new instance from a history event of another.")
@click.argument("instance_id", metavar="ID")
@click.option("--to", "to", type=int, required=True, metavar="SEQ", help="The history event.")
@click.option("--id", "new_id", required=True, metavar="NEW", help="The new instance's id.")
@pass_config
def fork(cfg: Config, instance_id: str, to: int, new_id: str) -> None:
    """Start instance NEW from the data and state instance ID had right after history event
    SEQ; ID is left as it is."""
    with cfg.engine() as engine:
        remembered_class(engine, engine.store.get(instance_id))
        inst = engine.fork(instance_id, to=to, new_id=new_id)
        click.echo(f"{inst.id}: forked from {instance_id} at event {to}, {inst.status.value}")


@click.command(short_help="Delete ended instances and their history.")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="DURATION",
    help="e.g. 30d, 12h, 90m: delete instances that ended longer ago than that.",
)
@pass_config
def prune(cfg: Config, older_than: str) -> None:
    """Delete finished, failed and cancelled instances (with their history) that ended longer
    ago than DURATION, in small batches; waiting and running ones are never touched."""
    age = parse_duration(older_than, "--older-than")
    with cfg.engine() as engine:
        count = engine.prune(older_than=age)
    click.echo(f"pruned {count} ended instance(s) older than {older_than}")


@click.command(short_help="List instances that are stuck, and why.")
@click.option(
    "--older-than",
    "older_than",
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="How long an instance may stay due before it counts as stuck.",
)
@_JSON_FLAG
@pass_config
def stuck(cfg: Config, older_than: str, as_json: bool) -> None:
    """List instances whose lease lapsed and nobody took over, that stayed due too long, or
    whose latest units all failed. Exit code 0 either way (scripts read --json)."""
    age = parse_duration(older_than, "--older-than")
    with cfg.engine() as engine:
        items = engine.stuck(older_than=age)
    if as_json:
        click.echo(dump_json(items))
        return
    if not items:
        click.echo("nothing is stuck")
        return
    for item in items:
        kind = f" ({item.workflow})" if item.workflow else ""
        click.echo(f"{item.id}{kind}  {item.reason}: {item.detail}")

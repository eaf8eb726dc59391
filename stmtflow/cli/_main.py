"""The ``stmtflow`` command line: start, inspect, drive and serve workflows kept in a store.

Commands (``stmtflow COMMAND --help`` for each; ``docs/cli.md`` shows example output):

=========================================  ==================================================
``run TARGET [--input JSON] [--id ID]``    start an instance and run it until it blocks
``send ID EVENT [JSON]``                   deliver an event (with its input) and run on
``show ID``                                data, threads, what it waits for, last error
``list [--status S] [--workflow W] [--parent ID]``  the stored instances
``inputs [--assignee A] [--workflow W]``   what people are asked for (forms, escalations)
``worker [TARGET ...]``                    fire due timers and retries until stopped
``serve [TARGET ...] [--host H --port P]``  the HTTP API and web page (uvicorn)
``schedule add|list|pause|resume|trigger|remove|backfill``  start workflows on a cron calendar
``cancel ID`` / ``restart ID``             end an instance / rerun a failed one's step
``graph TARGET [--id ID]``                 a diagram, with an instance's live positions
``check TARGET [FILES...]``                will a new definition strand running instances?
``asl validate|run|graph FILE``            Amazon States Language: check, run in memory, draw
``history ID``                             what happened, as a timeline (attempts, errors)
``rewind ID --to SEQ``                     put an instance back as after history event SEQ
``fork ID --to SEQ --id NEW``              start NEW from ID's history event SEQ
``prune --older-than 30d``                 delete ended instances and their history
``stuck [--older-than 5m]``                instances that should move and do not, and why
``dag validate FILE`` / ``dag run FILE``   check a YAML DAG / run it to its end
=========================================  ==================================================

TARGET is ``path/to/file.py:Class`` or ``package.module:Class``. The store remembers the target
of every workflow type it ran, so commands on an instance id need none. ``--db URL`` (or
``$STMTFLOW_DB``) picks the store; the default is ``sqlite:///stmtflow.db``.

Example:
    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(cli, ["--db", "memory://", "list"]).output
    'no instances\\n'
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from click.core import ParameterSource
from pydantic import ValidationError

from stmtflow.analysis._validate import validate
from stmtflow.cli._asl import asl
from stmtflow.cli._common import (
    Config,
    ErrorsAsOneLine,
    console,
    dump_json,
    fail,
    one_line,
    parse_json,
    pass_config,
    remember_children,
    remembered_class,
)
from stmtflow.cli._dag import dag
from stmtflow.cli._inputs import inputs
from stmtflow.cli._ops import fork, history, prune, rewind, stuck
from stmtflow.cli._schedule import schedule
from stmtflow.cli._serve import serve
from stmtflow.cli._show import instance_json, print_instance, print_records, record_json
from stmtflow.cli._tools import check, graph
from stmtflow.cli._worker import worker
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import NotFound
from stmtflow.runtime import Engine, Instance
from stmtflow.runtime._loader import load_target, normalize_target
from stmtflow.runtime._sinks import sink_from_url
from stmtflow.stores import DEFAULT_URL
from stmtflow.stores.base import status_value

__all__ = ["cli", "main"]

_JSON_FLAG = click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")


@click.group(cls=ErrorsAsOneLine, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    default=DEFAULT_URL,
    show_default=True,
    envvar="STMTFLOW_DB",
    metavar="URL",
    help=(
        "Store URL: sqlite:///file.db, postgresql://..., redis://..., memory:// (env STMTFLOW_DB)."
    ),
)
@click.option(
    "--sink",
    "sinks",
    multiple=True,
    metavar="URL",
    help=(
        "Deliver what steps emit here (repeatable): redis://host:6379/0?stream=NAME or "
        "nats://host:4222?subject=SUBJECT[&stream=NAME]."
    ),
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    envvar="STMTFLOW_LOG_LEVEL",
    help="What the stmtflow logger prints to stderr (env STMTFLOW_LOG_LEVEL).",
)
@click.version_option(package_name="stmtflow")
@click.pass_context
def cli(ctx: click.Context, db: str, sinks: tuple[str, ...], log_level: str) -> None:
    """Durable workflows written as plain Python: run, inspect and serve them."""
    _log_to_stderr(log_level)
    source = ctx.get_parameter_source("db")
    given = source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    for url in sinks:
        try:
            sink_from_url(url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--sink") from None
    ctx.obj = Config(db=db, db_given=given, sinks=sinks)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now (click's test runner swaps it per call)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.setStream(sys.stderr)
        super().emit(record)


def _log_to_stderr(level: str) -> None:
    """Show the library's records on stderr: as a library it only has a NullHandler."""
    logger = logging.getLogger("stmtflow")
    logger.setLevel(level.upper())
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(input)'}: {err['msg']}" for err in exc.errors()
    )


def _prepare(target: str, data: Any) -> tuple[type[WorkflowState], WorkflowState]:
    """Import the class and check the data and definition, before anything is stored."""
    cls = load_target(target)
    name = Engine.type_name(cls)
    if not isinstance(data, dict):
        fail(f"--input must be a JSON object with the fields of {name}, got {data!r}")
    try:
        wf = cls.model_validate(data)
    except ValidationError as exc:
        fail(f"invalid input for {name}: {_errors(exc)}")
    try:
        validate(wf.definition())
    except Exception as exc:
        fail(f"{name}.definition() is invalid: {one_line(str(exc))}")
    return cls, wf


def _waiting_line(engine: Engine, inst: Instance) -> str:
    events = engine.pending(inst.id)
    if not events:
        return ""
    return "; waits for " + ", ".join(e.name for e in events)


@cli.command(short_help="Start an instance and run it until it blocks.")
@click.argument("target")
@click.option("--input", "input_", metavar="JSON", help="The workflow's data (or @file.json).")
@click.option("--id", "instance_id", metavar="ID", help="Instance id (default: random).")
@_JSON_FLAG
@pass_config
def run(
    cfg: Config, target: str, input_: str | None, instance_id: str | None, as_json: bool
) -> None:
    """Start a TARGET workflow and run it until it blocks (the same --id twice runs once)."""
    data = parse_json(input_, "--input") if input_ is not None else {}
    if instance_id is not None and not instance_id:
        fail("--id must not be empty")
    cls, wf = _prepare(target, data)
    name = Engine.type_name(cls)
    with cfg.engine(create=True) as engine:
        existed = False
        if instance_id is not None:
            try:
                rec = engine.store.get(instance_id)
            except NotFound:
                pass
            else:
                if rec.workflow != name:
                    fail(f"instance {instance_id!r} exists already as a {rec.workflow} workflow")
                existed = True
        engine.register(cls, target=normalize_target(target))
        remember_children(engine, cls, wf, normalize_target(target))
        inst = engine.start(cls, wf, id=instance_id)
        if as_json:
            click.echo(dump_json(instance_json(inst, engine.pending(inst.id))))
            return
        verb = "exists already" if existed else "started"
        click.echo(f"{inst.id} {verb} ({name}): {inst.status.value}{_waiting_line(engine, inst)}")
        if inst.error:
            click.echo(f"error recorded: {inst.error}")
        click.echo(f"see it with: stmtflow show {inst.id}")


@cli.command(short_help="Deliver an event to an instance.")
@click.argument("instance_id", metavar="ID")
@click.argument("event")
@click.argument("input_json", metavar="[JSON]", required=False)
@click.option("--thread", "thread_id", metavar="THREAD", help="The waiting thread's id.")
@_JSON_FLAG
@pass_config
def send(
    cfg: Config,
    instance_id: str,
    event: str,
    input_json: str | None,
    thread_id: str | None,
    as_json: bool,
) -> None:
    """Deliver EVENT with its JSON input to instance ID, then run it until it blocks."""
    value = parse_json(input_json, "the event input") if input_json is not None else None
    with cfg.engine() as engine:
        remembered_class(engine, engine.store.get(instance_id))
        output = engine.send(instance_id, event, value, thread_id=thread_id)
        inst = engine.get(instance_id)
        if as_json:
            result = {"id": inst.id, "event": event, "output": output, "status": inst.status}
            click.echo(dump_json(result))
            return
        click.echo(f"{event} -> {inst.id}: {inst.status.value}{_waiting_line(engine, inst)}")
        if output is not None:
            click.echo(f"output: {dump_json(output)}")


@cli.command(short_help="Show an instance and what it waits for.")
@click.argument("instance_id", metavar="ID")
@_JSON_FLAG
@pass_config
def show(cfg: Config, instance_id: str, as_json: bool) -> None:
    """Show instance ID: data, threads, what it waits for (input, deadline), last error."""
    with cfg.engine() as engine:
        remembered_class(engine, engine.store.get(instance_id))
        inst = engine.get(instance_id)
        pending = engine.pending(instance_id)
        children = engine.store.list(parent_id=instance_id)
        if as_json:
            shown = instance_json(inst, pending)
            shown["children"] = [record_json(r) for r in children]
            click.echo(dump_json(shown))
        else:
            print_instance(console(), inst, pending, children)


@cli.command(name="list", short_help="List stored instances.")
@click.option(
    "--status",
    metavar="STATUS",
    help="waiting, finished, failed, cancelled, resuming, compensating",
)
@click.option("--workflow", metavar="TYPE", help="Only instances of this workflow type.")
@click.option("--parent", metavar="ID", help="Only the children instance ID started.")
@_JSON_FLAG
@pass_config
def list_(
    cfg: Config, status: str | None, workflow: str | None, parent: str | None, as_json: bool
) -> None:
    """List stored instances, oldest first."""
    wanted = status_value(status) if status is not None else None
    with cfg.store() as store:
        records = store.list(status=wanted, workflow=workflow, parent_id=parent)
    if as_json:
        click.echo(dump_json([record_json(r) for r in records]))
    else:
        print_records(console(), records)


@cli.command(short_help="Cancel an instance.")
@click.argument("instance_id", metavar="ID")
@click.option(
    "--compensate", is_flag=True, help="First run the compensations of its completed steps."
)
@pass_config
def cancel(cfg: Config, instance_id: str, compensate: bool) -> None:
    """Cancel instance ID: its pending events are torn down, its status becomes cancelled.

    With --compensate, the compensations of the steps it completed run first, latest first.
    """
    with cfg.engine() as engine:
        remembered_class(engine, engine.store.get(instance_id))
        inst = engine.cancel(instance_id, compensate=compensate)
        undone = len(inst.state.compensated)
        done = f" ({undone} compensation(s) ran)" if compensate else ""
        click.echo(f"{inst.id}: {inst.status.value}{done}")


@cli.command(short_help="Rerun a failed instance's failed step.")
@click.argument("instance_id", metavar="ID")
@pass_config
def restart(cfg: Config, instance_id: str) -> None:
    """Restart failed instance ID: its failed step gets a fresh set of attempts and runs."""
    with cfg.engine() as engine:
        rec = engine.store.get(instance_id)
        if rec.status != "failed":
            fail(f"instance {instance_id!r} is {rec.status}, not failed: nothing to restart")
        remembered_class(engine, rec)
        inst = engine.restart(instance_id)
        click.echo(f"{inst.id}: {inst.status.value}{_waiting_line(engine, inst)}")
        if inst.error:
            click.echo(f"last error: {inst.error}")


cli.add_command(inputs)
cli.add_command(schedule)
cli.add_command(worker)
cli.add_command(serve)
cli.add_command(graph)
cli.add_command(check)
cli.add_command(asl)
for _command in (history, rewind, fork, prune, stuck):
    cli.add_command(_command)
cli.add_command(dag)


def main() -> None:
    """The console script's entry point."""
    cli.main(prog_name="stmtflow")


if __name__ == "__main__":
    main()

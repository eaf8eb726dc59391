"""``stmtflow graph`` (diagrams) and ``stmtflow check`` (deploy compatibility).

Example:
    >>> from click.testing import CliRunner
    >>> from stmtflow.cli import cli
    >>> print(CliRunner().invoke(cli, ["check", "--diff", "only-one.json"]).stderr, end="")
    error: check --diff takes two files: OLD.json NEW.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from stmtflow.cli._common import CliError, Config, fail, parse_json, pass_config
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.render._render import definition_json, render_image, to_dot, to_mermaid
from stmtflow.runtime import Engine
from stmtflow.runtime._loader import load_target
from stmtflow.state import CallbackRequest, State, WorkflowStatus, load_state
from stmtflow.stores import Record

__all__ = ["check", "graph"]


def _default_instance(cls: type[WorkflowState]) -> WorkflowState:
    """The class with default data, to build its definition when no instance is given."""
    try:
        return cls()
    except ValidationError:
        return cls.model_construct()


def _section_of(wf: WorkflowState) -> Any:
    try:
        return wf.definition()
    except Exception as exc:
        fail(
            f"{type(wf).__name__}.definition() failed without instance data "
            f"({type(exc).__name__}: {exc}); pass --id ID to draw a stored instance"
        )


@click.command(short_help="Draw a definition (Mermaid, DOT, SVG, PNG).")
@click.argument("target")
@click.option("--id", "instance_id", metavar="ID", help="Overlay this stored instance's state.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg", "png", "json"]),
    default="mermaid",
    show_default=True,
    help="json is the definition_json tree (for check --diff).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@pass_config
def graph(cfg: Config, target: str, instance_id: str | None, fmt: str, output: str | None) -> None:
    """Draw TARGET's definition; with --id, where that instance's threads stand."""
    cls = load_target(target)
    state: State | None = None
    children: dict[str, str] = {}
    if instance_id is not None:
        with cfg.engine() as engine:
            engine.register(cls)
            inst = engine.get(instance_id)
            if inst.workflow != Engine.type_name(cls):
                fail(f"instance {instance_id!r} is a {inst.workflow} workflow, not {cls.__name__}")
            wf, state = inst.data, inst.state
            children = call_children(engine.store.list(parent_id=instance_id))
    else:
        wf = _default_instance(cls)
    section = _section_of(wf)
    if fmt in ("svg", "png"):
        if output is None and fmt == "png":
            fail("--format png needs -o FILE")
        image = render_image(section, state, fmt, children=children)
        if output is None:
            sys.stdout.write(image.decode())
        else:
            Path(output).write_bytes(image)
        return
    if fmt == "json":
        text = json.dumps(definition_json(section), indent=2) + "\n"
    else:
        draw = to_mermaid if fmt == "mermaid" else to_dot
        text = draw(section, state, children=children)
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text)


def call_children(records: list[Record]) -> dict[str, str]:
    """The latest child of each `Call`, by the call's name: ``"<id>: <status>"`` (a call's
    child is delivered to its event ``<name>.child``)."""
    found: dict[str, str] = {}
    for rec in records:  # oldest first: a later child of the same call wins
        if rec.parent_event is None:
            continue
        event = CallbackRequest.model_validate_json(rec.parent_event).name
        if event.endswith(".child"):
            found[event.removesuffix(".child")] = f"{rec.id}: {rec.status}"
    return found


def _state_file(path: str) -> tuple[State, dict[str, Any] | None]:
    """A state from a file: a State JSON, or ``show --json`` output (state with data)."""
    raw = parse_json(f"@{path}", f"state file {path}")
    if isinstance(raw, dict) and isinstance(raw.get("state"), dict):
        data = raw.get("data") if isinstance(raw.get("data"), dict) else None
        return load_state(raw["state"]), data
    if not isinstance(raw, dict):
        fail(f"state file {path} does not hold a JSON object")
    return load_state(raw), None


def _diff(files: tuple[str, ...]) -> None:
    if len(files) != 2:
        raise click.UsageError("check --diff takes two files: OLD.json NEW.json")
    old, new = (parse_json(f"@{f}", f"definition file {f}") for f in files)
    from stmtflow.analysis._compat import compare_definitions

    diff = compare_definitions(old, new)
    click.echo(diff.report())
    if diff.breaking:
        raise CliError("the new definition removes, moves or changes names old ones stand on")


@click.command(short_help="Check running instances against a new definition.")
@click.argument("args", nargs=-1, metavar="TARGET [STATE_FILES...] | --diff OLD NEW")
@click.option("--diff", "diff_mode", is_flag=True, help="Compare two definition_json files.")
@click.option("--db", "db", metavar="URL", help="Check the instances stored here.")
@pass_config
def check(cfg: Config, args: tuple[str, ...], diff_mode: bool, db: str | None) -> None:
    """Will TARGET's definition strand running instances? Exit 1 if any would break.

    Checks the given state files (a State JSON, or `stmtflow show ID --json` output), or,
    without files or with --db, the unfinished instances in the store.
    """
    if diff_mode:
        _diff(args)
        return
    if not args:
        raise click.UsageError("check needs TARGET (or --diff OLD.json NEW.json)")
    from stmtflow.analysis._compat import check_compatibility, format_report

    cls = load_target(args[0])
    name = Engine.type_name(cls)
    findings = []
    broken_data: list[str] = []
    checked = 0
    for path in args[1:]:
        state, data = _state_file(path)
        wf = cls.model_validate(data) if data is not None else _default_instance(cls)
        findings += check_compatibility(wf, [(path, state)])
        checked += 1
    if db is not None or cfg.db_given or len(args) == 1:
        with Config(db=db or cfg.db).engine() as engine:
            engine.register(cls)
            for rec in engine.store.list(workflow=name):
                if rec.status in (WorkflowStatus.FINISHED.value, WorkflowStatus.CANCELLED.value):
                    continue
                checked += 1
                try:
                    wf, state = cls.model_validate_json(rec.data), load_state(rec.state)
                except ValidationError as exc:
                    broken_data.append(f"{rec.id}: stored data no longer fits {name}: {exc}")
                    continue
                findings += check_compatibility(wf, [state])
    click.echo(format_report(findings, checked=checked))
    for line in broken_data:
        click.echo(f"  {' '.join(line.split())}")
    if findings or broken_data:
        raise CliError(f"{len(findings) + len(broken_data)} problem(s) found")

"""``stmtflow asl``: validate and run Amazon States Language state machines (docs/asl.md).

``asl validate FILE.json`` lists every problem of a definition (exit status 1 if any);
``asl graph FILE.json`` draws its states and transitions (Mermaid);
``asl run FILE.json --input JSON`` runs one execution in memory on a fake clock (Wait states
take no time) and prints how it ended as JSON: exit status 0 when it SUCCEEDED, 1 when it
FAILED. Tasks call the callables of ``--resources module:NAME`` (or ``file.py:NAME``), a dict
from each ``Resource`` to its callable.

Example:
    >>> from click.testing import CliRunner
    >>> from stmtflow.cli import cli
    >>> CliRunner().invoke(cli, ["asl", "validate", "/no/such.json"]).output
    'error: cannot read /no/such.json: No such file or directory\\n'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from stmtflow.cli._common import dump_json, fail, parse_json
from stmtflow.errors import DefinitionError, TargetError

__all__ = ["asl"]


def _read(path: str) -> Any:
    from stmtflow.asl._workflow import parse_definition

    try:
        text = Path(path).read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
    try:
        return parse_definition(text)
    except DefinitionError as exc:
        fail(f"{path}: {exc.issues[0]}")


def _resources(target: str | None) -> dict[str, Any] | None:
    if target is None:
        return None
    from stmtflow.runtime._loader import _import_file, _import_module, is_file_target, parse_target

    where, name = parse_target(target)
    module = _import_file(where) if is_file_target(where) else _import_module(where)
    found = getattr(module, name, None)
    if not isinstance(found, dict):
        raise TargetError(f"{target!r} is not a dict of resources")
    return found


def _count(machine: dict[str, Any]) -> int:
    total = 0
    for spec in machine.get("States", {}).values():
        total += 1
        for branch in spec.get("Branches", []):
            total += _count(branch)
        for key in ("ItemProcessor", "Iterator"):
            if key in spec:
                total += _count(spec[key])
    return total


@click.group(short_help="Validate and run Amazon States Language state machines.")
def asl() -> None:
    """Amazon States Language (Step Functions) state machines."""


@asl.command(short_help="List every problem of a state machine.")
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Check FILE.json; every problem is listed, and the exit status is 1 if there is one."""
    from stmtflow.asl import problems

    definition = _read(file)
    found = problems(definition)
    if found:
        click.echo(f"{file}: {len(found)} problem{'s' if len(found) != 1 else ''}")
        for line in found:
            click.echo(f"  - {line}")
        raise SystemExit(1)
    n = _count(definition)
    click.echo(f"{file}: a valid state machine ({n} state{'s' if n != 1 else ''})")


@asl.command(short_help="Run one execution in memory (fake clock).")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--input", "input_json", default="{}", metavar="JSON", help="The input (@file).")
@click.option(
    "--resources", metavar="TARGET", help="module:NAME or file.py:NAME, a dict of callables."
)
def run(file: str, input_json: str, resources: str | None) -> None:
    """Run FILE.json on --input and print the result; exit status 1 if it FAILED."""
    from stmtflow.asl import run as run_machine

    definition = _read(file)
    value = parse_json(input_json, "--input")
    try:
        result = run_machine(definition, value, resources=_resources(resources))
    except DefinitionError as exc:
        fail(f"{file}: {'; '.join(exc.issues)}")
    out: dict[str, Any] = {"status": result.status}
    if result.status == "SUCCEEDED":
        out["output"] = result.output
    else:
        out |= {"error": result.error, "cause": result.cause}
    click.echo(dump_json(out))
    if result.status != "SUCCEEDED":
        raise SystemExit(1)


@asl.command(short_help="Draw a state machine (Mermaid).")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
def graph(file: str, output: str | None) -> None:
    """Draw FILE.json's states and transitions as a Mermaid flowchart."""
    from stmtflow.asl import problems
    from stmtflow.asl._diagram import to_mermaid

    definition = _read(file)
    found = problems(definition)
    if found:
        fail(f"{file}: {'; '.join(found)}")
    text = to_mermaid(definition) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text)

"""``stmtflow dag validate FILE`` and ``stmtflow dag run FILE --handlers MODULE``: YAML DAGs.

``validate`` prints every problem of the file, one a line (exit 1 when there is any); with
``--handlers`` it also checks that each handler name exists. ``run`` starts an instance of the
DAG in the store (``--db``) and works it to its end in the foreground, waiting out retry
backoffs: a DAG waits for nothing else. The same ``--id`` again continues that instance (after
a crash, say) instead of starting another.

Example:
    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(dag, ["validate", "examples/dag_pipeline.yaml"]).output
    'examples/dag_pipeline.yaml: valid (5 steps)\\n'
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import click

from stmtflow.cli._common import Config, dump_json, fail, parse_json, pass_config
from stmtflow.errors import DefinitionError
from stmtflow.runtime._loader import _import_file, _import_module, is_file_target
from stmtflow.state import WorkflowStatus

__all__ = ["dag"]

_WAITING = (WorkflowStatus.WAITING, WorkflowStatus.RESUMING, WorkflowStatus.COMPENSATING)


def _handlers(where: str) -> ModuleType:
    """The handlers module: a ``.py`` file or a dotted module name."""
    return _import_file(where) if is_file_target(where) else _import_module(where)


@click.group(short_help="Validate and run YAML DAG files.")
def dag() -> None:
    """YAML DAGs (docs/dag.md): steps with dependencies, retries, fallbacks, compensation."""


@dag.command(short_help="Check a DAG file, printing every problem.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--handlers", metavar="MODULE", help="Also check the handler names (file.py or module)."
)
def validate(file: str, handlers: str | None) -> None:
    """Check FILE against the DAG schema and its steps against each other."""
    from stmtflow.dag._spec import check

    doc, problems = check(Path(file), handlers=None if handlers is None else _handlers(handlers))
    if problems:
        click.echo(f"{file}: {len(problems)} problem(s)")
        for problem in problems:
            click.echo(f"  - {problem.removeprefix(f'{file}: ')}")
        raise SystemExit(1)
    click.echo(f"{file}: valid ({len(doc['steps'])} steps)")


@dag.command(short_help="Run a DAG file to its end.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--handlers", "where", required=True, metavar="MODULE", help="file.py or module.")
@click.option("--input", "input_", metavar="JSON", help="The run's input (or @file.json).")
@click.option("--id", "instance_id", metavar="ID", help="Instance id (default: random).")
@click.option("--json", "as_json", is_flag=True, help="Print the outputs as JSON.")
@pass_config
def run(
    cfg: Config,
    file: str,
    where: str,
    input_: str | None,
    instance_id: str | None,
    as_json: bool,
) -> None:
    """Start FILE's DAG (or continue instance --id) and work it until it ends."""
    from stmtflow.dag import load

    data = parse_json(input_, "--input") if input_ is not None else {}
    if not isinstance(data, dict):
        fail(f"--input must be a JSON object, got {data!r}")
    try:
        cls = load(Path(file), handlers=_handlers(where))
    except DefinitionError as exc:
        fail(f"{file} is invalid: " + "; ".join(exc.issues))
    with cfg.engine(create=True) as engine:
        engine.register(cls)
        inst = engine.start(cls, {"input": data}, id=instance_id)
        while inst.status in _WAITING:
            wake = inst.wake_at or datetime.now(UTC)
            time.sleep(max(0.0, min((wake - datetime.now(UTC)).total_seconds(), 1.0)))
            if wake <= datetime.now(UTC):
                engine.wake(inst.id)
            inst = engine.get(inst.id)
    outputs = getattr(inst.data, "outputs", {})
    if as_json:
        click.echo(dump_json({"id": inst.id, "status": inst.status.value, "outputs": outputs}))
    else:
        click.echo(f"{inst.id} {inst.status.value} ({cls.__name__}): {len(outputs)} outputs")
        for step, output in outputs.items():
            click.echo(f"  {step}: {json.dumps(output)}")
    if inst.status is not WorkflowStatus.FINISHED:
        fail(f"{inst.id} {inst.status.value}: {inst.error}")

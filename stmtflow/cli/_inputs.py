"""``stmtflow inputs``: what people are asked for, across every instance of the store.

Each row is a `PendingInput` (a `HumanInput` event armed by a waiting thread, or an escalated
step waiting for an operator), read from the store's index; answer one with
``stmtflow send ID EVENT JSON``.

Example:
    >>> row = PendingInput("exp-1", "review.answer", "_main_", "Approve?", "ana", {},
    ...                    datetime(2026, 1, 1, tzinfo=UTC), None, "Expense")
    >>> input_json(row)["assignee"], input_json(row)["asked_at"]
    ('ana', '2026-01-01T00:00:00+00:00')
"""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from stmtflow.cli._common import Config, console, dump_json, pass_config, when
from stmtflow.cli._show import schema_summary
from stmtflow.stores import PendingInput
from stmtflow.stores._inputs import input_json

__all__ = ["input_json", "inputs", "print_inputs"]


def print_inputs(out: Console, rows: list[PendingInput]) -> None:
    """The ``inputs`` table: one row per question, oldest first."""
    if not rows:
        out.print("nobody is asked for anything")
        return
    now = datetime.now(UTC)
    table = Table(expand=False)
    for column in ("instance", "event", "assignee", "prompt", "input", "asked", "deadline"):
        table.add_column(column, overflow="fold")
    for row in rows:
        thread = "" if row.thread_id == "_main_" else f" [{row.thread_id}]"
        table.add_row(
            f"{row.instance_id} ({row.workflow})",
            Text(row.event + thread, style="bold"),
            row.assignee or "-",
            row.prompt,
            schema_summary(row.input_schema),
            when(row.asked_at, now),
            when(row.deadline, now) if row.deadline else "-",
        )
    out.print(table)
    out.print(Text("answer one with: stmtflow send ID EVENT '<json input>'", style="dim"))


@click.command(short_help="List what people are asked for.")
@click.option("--assignee", metavar="WHO", help="Only questions for this assignee.")
@click.option("--workflow", metavar="TYPE", help="Only instances of this workflow type.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
@pass_config
def inputs(cfg: Config, assignee: str | None, workflow: str | None, as_json: bool) -> None:
    """List the questions waiting instances ask people (forms, escalated steps), oldest first."""
    with cfg.store() as store:
        rows = store.inputs(assignee=assignee, workflow=workflow)
    if as_json:
        click.echo(dump_json([input_json(row) for row in rows]))
    else:
        print_inputs(console(), rows)

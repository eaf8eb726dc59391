"""How ``stmtflow show`` and ``stmtflow list`` present instances: rich tables, or JSON.

Example:
    >>> schema_summary({"type": "object", "properties": {"ok": {"type": "boolean"}},
    ...                 "required": ["ok"]})
    'ok: boolean'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.json import JSON
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from stmtflow.cli._common import STATUS_STYLE, when
from stmtflow.runtime import Instance, PendingEvent
from stmtflow.stores import Record

__all__ = [
    "instance_json",
    "pending_json",
    "print_instance",
    "print_records",
    "record_json",
    "schema_summary",
]


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"list[{_type_of(schema['items'])}]"
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    return str(kind) if kind else "any"


def schema_summary(schema: dict[str, Any] | None) -> str:
    """A JSON Schema in one short line: ``field: type`` pairs (``?`` marks optional ones)."""
    if schema is None:
        return "-"
    props = schema.get("properties")
    if schema.get("type") == "object" and isinstance(props, dict):
        required = set(schema.get("required", []))
        parts = [
            f"{name}{'' if name in required else '?'}: {_type_of(sub)}"
            for name, sub in props.items()
        ]
        return ", ".join(parts) or "{}"
    if schema.get("type") == "null":
        return "none"
    return _type_of(schema)


def pending_json(events: Iterable[PendingEvent]) -> list[dict[str, Any]]:
    """The events an instance waits for, as JSON-ready dicts."""
    return [
        {
            "event": e.name,
            "thread": e.thread_id,
            "type": e.type,
            "input_schema": e.input_schema,
            "deadline": e.deadline.isoformat() if e.deadline else None,
            "status": e.status,
            "prompt": e.prompt,
            "assignee": e.assignee,
        }
        for e in events
    ]


def instance_json(inst: Instance, pending: Iterable[PendingEvent]) -> dict[str, Any]:
    """An instance as JSON-ready data: what ``show --json`` prints (and ``check`` reads)."""
    return {
        "id": inst.id,
        "workflow": inst.workflow,
        "status": inst.status.value,
        "version": inst.version,
        "wake_at": inst.wake_at.isoformat() if inst.wake_at else None,
        "error": inst.error,
        "data": inst.data.model_dump(mode="json"),
        "state": inst.state.model_dump(mode="json"),
        "pending": pending_json(pending),
    }


def record_json(rec: Record) -> dict[str, Any]:
    """A stored record's summary (no data or state): what ``list --json`` prints."""
    return {
        "id": rec.id,
        "workflow": rec.workflow,
        "status": rec.status,
        "wake_at": rec.wake_at.isoformat() if rec.wake_at else None,
        "error": rec.error,
        "parent_id": rec.parent_id,
        "root_id": rec.root_id or rec.id,
        "created_at": rec.created_at.isoformat() if rec.created_at else None,
        "updated_at": rec.updated_at.isoformat() if rec.updated_at else None,
    }


def _status(value: str) -> Text:
    return Text(value, style=STATUS_STYLE.get(value, ""))


def _summary(inst: Instance, now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("workflow", inst.workflow)
    grid.add_row("status", _status(inst.status.value))
    grid.add_row("version", str(inst.version))
    if inst.parent_id is not None:
        grid.add_row("parent", inst.parent_id)
        grid.add_row("root", inst.root_id or "-")
    if inst.wake_at is not None:
        grid.add_row("wakes", when(inst.wake_at, now))
    return grid


def _threads(inst: Instance, now: datetime) -> Table:
    table = Table(title="Threads", title_justify="left", expand=False)
    for column in ("thread", "status", "at", "attempt", "retry at", "last error"):
        table.add_column(column)
    for t in inst.state.threads:
        table.add_row(
            t.id,
            t.status.value,
            t.cur_step or "(start)",
            str(t.attempt) if t.attempt else "-",
            when(t.retry_at, now) if t.retry_at else "-",
            t.last_error or "-",
        )
    return table


def _pending(events: list[PendingEvent], now: datetime) -> Table:
    table = Table(title="Waiting for", title_justify="left", expand=False)
    for column in ("event", "thread", "handler", "input", "deadline"):
        table.add_column(column)
    for e in events:
        kind = e.type if e.status == "setup" else f"{e.type} ({e.status})"
        table.add_row(
            Text(e.name, style="bold"),
            e.thread_id,
            kind,
            schema_summary(e.input_schema),
            when(e.deadline, now) if e.deadline else "-",
        )
    return table


def _children(records: list[Record], now: datetime) -> Table:
    table = Table(title="Children", title_justify="left", expand=False)
    for column in ("id", "workflow", "status", "when parent ends", "updated"):
        table.add_column(column, overflow="fold")
    for rec in records:
        table.add_row(
            rec.id,
            rec.workflow,
            _status(rec.status),
            rec.on_parent_end or "-",
            when(rec.updated_at, now) if rec.updated_at else "-",
        )
    return table


def _asked(id: str, event: PendingEvent) -> Panel:
    """A question a person is to answer: the prompt, whom it is for, and how to answer it; for
    an escalated step, why it waits (the step, its attempts and last error are the prompt)."""
    if event.type == "Escalation":
        title, style = f"Escalated: waits for an operator ({event.name})", "yellow"
        answer = f"""stmtflow send {id} {event.name} '{{"action": "retry"}}'  (or "skip", "fail")"""
    else:
        who = f" for {event.assignee}" if event.assignee else ""
        title, style = f"Asks{who} ({event.name})", "cyan"
        answer = f"stmtflow send {id} {event.name} '<json input>'"
    body = Group(Text(event.prompt or ""), Text(answer, style="dim"))
    return Panel(body, title=title, title_align="left", border_style=style, expand=False)


def print_instance(
    out: Console,
    inst: Instance,
    pending: list[PendingEvent],
    children: list[Record] = (),  # type: ignore[assignment]
) -> None:
    """Show an instance: summary, data, threads, what it waits for, its children and its last
    error."""
    now = datetime.now(UTC)
    parts: list[Any] = [_summary(inst, now)]
    out.print(Panel(Group(*parts), title=f"[bold]{inst.id}[/]", title_align="left", expand=False))
    out.print(
        Panel(JSON(inst.data.model_dump_json()), title="Data", title_align="left", expand=False)
    )
    if inst.state.threads:
        out.print(_threads(inst, now))
    if pending:
        out.print(_pending(pending, now))
        for event in pending:
            if event.prompt is not None:
                out.print(_asked(inst.id, event))
        out.print(Text(f"send one with: stmtflow send {inst.id} EVENT '<json input>'", style="dim"))
    if children:
        out.print(_children(list(children), now))
    if inst.error:
        out.print(Panel(Text(inst.error), title="Last error", border_style="red"))


def print_records(out: Console, records: list[Record]) -> None:
    """The ``list`` table: one row per stored instance."""
    if not records:
        out.print("no instances")
        return
    now = datetime.now(UTC)
    table = Table(expand=False)
    for column in ("id", "workflow", "status", "wakes", "updated", "error"):
        table.add_column(column, overflow="fold")
    for rec in records:
        error = rec.error or ""
        table.add_row(
            rec.id,
            rec.workflow,
            _status(rec.status),
            when(rec.wake_at, now) if rec.wake_at else "-",
            when(rec.updated_at, now) if rec.updated_at else "-",
            error if len(error) <= 60 else error[:57] + "...",
        )
    out.print(table)

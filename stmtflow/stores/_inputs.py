"""The index of what people are asked for: one `PendingInput` row per person-facing wait.

An instance's rows are written by the same write as its state (`Store.update` and
`Store.update_free` take them as ``inputs=``, replacing the instance's whole set), so the index
never disagrees with a committed state, and ``engine.inputs()`` reads the rows alone instead of
every state document. The SQL both database stores share is written here once, for either
parameter style (``mark`` spells a named parameter, as in `stmtflow.stores._sql`).

Example:
    >>> from datetime import UTC, datetime
    >>> row = PendingInput("exp-1", "review.answer", "_main_", "Approve?", "ana", {},
    ...                    datetime(2026, 1, 1, tzinfo=UTC), None, "Expense")
    >>> check_inputs("exp-1", [row]) == (row,)
    True
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "INPUT_COLUMNS",
    "PendingInput",
    "check_inputs",
    "from_row",
    "input_json",
    "input_params",
    "input_query",
    "matching",
    "schema_reader",
]

Mark = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class PendingInput:
    """One thing a person is asked for: an event of a waiting instance that a person answers.

    Listed by ``engine.inputs()`` across all instances: every `HumanInput` event armed by a
    waiting thread (an `Ask` is one), and every escalated step waiting for an operator
    (``f"{step}.escalation"``). Answer it with ``engine.send(instance_id, event, input,
    thread_id=thread_id)`` (or ``stmtflow send ID EVENT JSON``).

    Attributes:
        instance_id: the waiting instance.
        event: the event to send.
        thread_id: the waiting thread.
        prompt: what is asked (for an escalation: which step failed, how often, and why).
        assignee: who is asked, if anyone in particular.
        input_schema: the JSON Schema of a valid answer (read-only: rows of one listing may
            share it).
        asked_at: when the wait armed the event.
        deadline: when the wait gives up (the earliest timer of the same wait), if ever.
        workflow: the instance's workflow type.

    Example:
        >>> row = PendingInput("exp-1", "review.answer", "_main_", "Approve?", None, {},
        ...                    datetime(2026, 1, 1, tzinfo=UTC), None)
        >>> row.deadline is None
        True
    """

    instance_id: str
    event: str
    thread_id: str
    prompt: str
    assignee: str | None
    input_schema: dict[str, Any]
    asked_at: datetime
    deadline: datetime | None
    workflow: str = ""


def input_json(row: PendingInput) -> dict[str, Any]:
    """A row as JSON-ready data: what ``stmtflow inputs --json`` prints and the HTTP API answers."""
    return {
        "instance_id": row.instance_id,
        "workflow": row.workflow,
        "event": row.event,
        "thread_id": row.thread_id,
        "prompt": row.prompt,
        "assignee": row.assignee,
        "input_schema": row.input_schema,
        "asked_at": row.asked_at.isoformat(),
        "deadline": row.deadline.isoformat() if row.deadline else None,
    }


def check_inputs(record_id: str, inputs: Iterable[PendingInput]) -> tuple[PendingInput, ...]:
    """``inputs`` as a tuple, each checked to belong to ``record_id``, once per thread and
    event, with aware times; anything else is a `ValueError` (and nothing is written)."""
    rows = tuple(inputs)
    seen: set[tuple[str, str]] = set()
    for row in rows:
        if not isinstance(row, PendingInput):
            raise ValueError(f"record {record_id!r}: inputs must be PendingInput, got {row!r}")
        if row.instance_id != record_id:
            raise ValueError(
                f"record {record_id!r}: a pending input names instance {row.instance_id!r}"
            )
        key = (row.thread_id, row.event)
        if key in seen:
            raise ValueError(
                f"record {record_id!r}: thread {row.thread_id!r} lists event {row.event!r} twice"
            )
        seen.add(key)
        for at in (row.asked_at, row.deadline):
            if at is not None and at.tzinfo is None:
                raise ValueError(f"record {record_id!r}: pending input times must be aware")
    return rows


def matching(
    rows: Iterable[PendingInput], assignee: str | None, workflow: str | None
) -> builtins.list[PendingInput]:
    """``rows`` that fit the filters, in listing order (oldest question first)."""
    found = [
        row
        for row in rows
        if (assignee is None or row.assignee == assignee)
        and (workflow is None or row.workflow == workflow)
    ]
    found.sort(key=lambda r: (r.asked_at, r.instance_id, r.thread_id, r.event))
    return found


INPUT_COLUMNS = (
    "instance_id, event, thread_id, prompt, assignee, input_schema, asked_at, deadline, workflow"
)
"""The columns of ``stmtflow_inputs``, in `PendingInput`'s order."""


def input_query(
    assignee: str | None, workflow: str | None, mark: Mark
) -> tuple[str, dict[str, Any]]:
    """The ``SELECT`` of `Store.inputs`, in listing order, served by the table's indexes."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if assignee is not None:
        where.append(f"assignee = {mark('assignee')}")
        params["assignee"] = assignee
    if workflow is not None:
        where.append(f"workflow = {mark('workflow')}")
        params["workflow"] = workflow
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = (
        f"SELECT {INPUT_COLUMNS} FROM stmtflow_inputs{clause} "
        "ORDER BY asked_at, instance_id, thread_id, event"
    )
    return sql, params


def input_params(
    row: PendingInput, dump: Callable[[dict[str, Any]], str], ts: Callable[[datetime | None], Any]
) -> tuple[Any, ...]:
    """One row's values for ``INSERT INTO stmtflow_inputs (INPUT_COLUMNS)``; ``dump`` writes
    the schema as JSON text, ``ts`` a time as the backend stores it."""
    asked_at = row.asked_at.astimezone(UTC)
    deadline = None if row.deadline is None else row.deadline.astimezone(UTC)
    schema = dump(row.input_schema)
    return (
        row.instance_id,
        row.event,
        row.thread_id,
        row.prompt,
        row.assignee,
        schema,
        ts(asked_at),
        ts(deadline),
        row.workflow,
    )


def schema_reader() -> Callable[[str], dict[str, Any]]:
    """A JSON reader for the schemas of one listing: each distinct text is parsed once.

    Most questions of a store share a handful of forms, so a listing of 10 000 rows parses a
    few schemas, not 10 000 (the parse was half the listing's cost). Rows with the same schema
    text share its dict: treat ``input_schema`` as read-only.
    """
    parsed: dict[str, dict[str, Any]] = {}

    def read(text: str) -> dict[str, Any]:
        schema = parsed.get(text)
        if schema is None:
            schema = parsed[text] = json.loads(text)
        return schema

    return read


def from_row(
    values: Sequence[Any],
    load: Callable[[str], dict[str, Any]],
    dt: Callable[[Any], datetime | None],
) -> PendingInput:
    """The `PendingInput` of a row read with `INPUT_COLUMNS`."""
    instance_id, event, thread_id, prompt, assignee, schema, asked_at, deadline, workflow = values
    at = dt(asked_at)
    assert at is not None  # the column is NOT NULL
    return PendingInput(
        instance_id, event, thread_id, prompt, assignee, load(schema), at, dt(deadline), workflow
    )

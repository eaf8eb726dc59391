"""The pending-input index on Redis: rows written by the same script as their instance's state.

Each row (`stmtflow.stores._inputs.PendingInput`) is one member of sorted set ``P:inputs``,
scored by ``asked_at``; the member is ``instance_id``, ``thread_id`` and ``event`` joined by NUL
characters, so members with the same score sort as the listing orders them (the ids' bytes, and
NUL before any other character). ``P:inputs:assignee:<name>`` and ``P:inputs:workflow:<type>``
hold the same members for the filtered listings, hash ``P:input`` each member's row as JSON, and
hash ``P:inputs-of:<id>`` the members of one instance and the sets each is in, so that a write
replaces exactly its instance's rows.

Example:
    >>> from datetime import UTC, datetime
    >>> from stmtflow.stores._inputs import schema_reader
    >>> row = PendingInput("exp-1", "review.answer", "_main_", "Approve?", "ana", {},
    ...                    datetime(2026, 1, 1, tzinfo=UTC), None, "Expense")
    >>> decode(encode_args("exp-1", [row])[5], schema_reader()) == row
    True
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from stmtflow.stores._inputs import PendingInput, check_inputs
from stmtflow.stores._redis_codec import micros, time_from

__all__ = ["decode", "encode_args", "index_key"]


def encode_args(record_id: str, inputs: Sequence[PendingInput] | None) -> list[str]:
    """The script arguments that replace ``record_id``'s rows with ``inputs`` (``[""]`` for
    None: leave them). A row of another instance, a thread and event listed twice, or a naive
    time is a `ValueError`, before anything is written."""
    if inputs is None:
        return [""]
    rows = check_inputs(record_id, inputs)
    args = [str(len(rows))]
    for row in rows:
        asked_at = micros(row.asked_at)
        text = json.dumps(
            [
                row.instance_id,
                row.event,
                row.thread_id,
                row.prompt,
                row.assignee,
                json.dumps(row.input_schema),
                asked_at,
                None if row.deadline is None else micros(row.deadline),
                row.workflow,
            ],
            ensure_ascii=False,
        )
        member = "\0".join((row.instance_id, row.thread_id, row.event))
        args += [member, asked_at, row.assignee or "", row.workflow, text]
    return args


def decode(text: str, load: Callable[[str], dict[str, Any]]) -> PendingInput:
    """The `PendingInput` of one stored row (``load`` parses its schema: `schema_reader`)."""
    instance_id, event, thread_id, prompt, assignee, schema, asked_at, deadline, workflow = (
        json.loads(text)
    )
    at = time_from(asked_at)
    assert at is not None
    return PendingInput(
        instance_id,
        event,
        thread_id,
        prompt,
        assignee,
        load(schema),
        at,
        time_from(deadline),
        workflow,
    )


def index_key(assignee: str | None, workflow: str | None) -> str:
    """The suffix of the sorted set that serves a listing (the assignee's when both filter)."""
    if assignee is not None:
        return f":inputs:assignee:{assignee}"
    if workflow is not None:
        return f":inputs:workflow:{workflow}"
    return ":inputs"

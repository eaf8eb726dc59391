"""The JSON the routes answer with: instances, pending events, inputs, as plain dicts.

One function per read model, shared by the JSON routes and the web page, so both show the
same fields under the same names. Times are ISO 8601 strings in UTC; the state is the stored
JSON format (docs/state-format.md).

Example:
    >>> from datetime import UTC, datetime
    >>> iso(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    '2024-01-02T03:04:05+00:00'
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from stmtflow.runtime import HistoryEvent, Instance, PendingEvent
from stmtflow.state import dump_state
from stmtflow.stores import Record
from stmtflow.stores._inputs import input_json

__all__ = [
    "event_json",
    "history_json",
    "input_json",
    "instance_json",
    "iso",
    "record_json",
    "summary_json",
]


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def summary_json(inst: Instance) -> dict[str, Any]:
    """An instance in a listing: no data, no state."""
    return {
        "id": inst.id,
        "workflow": inst.workflow,
        "status": inst.status.value,
        "version": inst.version,
        "wake_at": iso(inst.wake_at),
        "error": inst.error,
        "parent_id": inst.parent_id,
        "root_id": inst.root_id,
    }


def record_json(rec: Record) -> dict[str, Any]:
    """`summary_json` from the stored record alone (no data or state parsed)."""
    return {
        "id": rec.id,
        "workflow": rec.workflow,
        "status": rec.status,
        "version": rec.version,
        "wake_at": iso(rec.wake_at),
        "error": rec.error,
        "parent_id": rec.parent_id,
        "root_id": rec.root_id or rec.id,
    }


def instance_json(inst: Instance, pending: list[PendingEvent]) -> dict[str, Any]:
    """One instance in full: its data, its state, and the events it waits for."""
    return {
        **summary_json(inst),
        "data": json.loads(inst.data.model_dump_json()),
        "state": json.loads(dump_state(inst.state)),
        "pending": [event_json(p) for p in pending],
    }


def event_json(event: PendingEvent) -> dict[str, Any]:
    return {
        "name": event.name,
        "thread_id": event.thread_id,
        "type": event.type,
        "input_schema": event.input_schema,
        "deadline": iso(event.deadline),
        "status": event.status,
        "prompt": event.prompt,
        "assignee": event.assignee,
    }


def history_json(event: HistoryEvent, rewindable: bool) -> dict[str, Any]:
    """One history event, and whether the instance can be rewound to it now."""
    return {
        "seq": event.seq,
        "at": iso(event.at),
        "kind": event.kind,
        "thread_id": event.thread_id,
        "name": event.name,
        "attempt": event.attempt,
        "error": event.error,
        "detail": event.detail,
        "rewindable": rewindable,
    }

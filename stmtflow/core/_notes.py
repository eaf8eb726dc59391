"""What the interpreter notes for the history, as it applies each unit of progress.

The interpreter stays sans-I/O: it appends a `Note` to a list the caller gave it
(`Interpreter.notes`) at the one place each fact is decided — a step's action returned, an
attempt failed and a retry is due, a final failure was caught, an event fired, a compensation
ran — and the caller turns the notes into history events written with the very checkpoint that
made the progress durable (`stmtflow.runtime._history`). With no list given nothing is noted
and nothing costs: a plain ``resume`` keeps no history.

Example:
    >>> Note("step_completed", "_main_", "charge", attempt=1).kind
    'step_completed'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Note"]


@dataclass(frozen=True, slots=True)
class Note:
    """One fact for the history, as the interpreter saw it (time and sequence are the
    runtime's)."""

    kind: str
    """The `HistoryEvent` kind (``step_completed``, ``retry_scheduled``, ...)."""
    thread_id: str | None = None
    """The thread it happened on (None: the execution as a whole)."""
    name: str | None = None
    """The step or event it is about."""
    attempt: int | None = None
    """The step's attempt (1 for the first)."""
    error: str | None = None
    """What failed, for a failure."""
    detail: dict[str, Any] | None = None
    """Anything else worth showing (a retry time, a child id)."""

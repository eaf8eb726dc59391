"""A unit's history: the facts noted since its last write, written with its next one.

The interpreter notes what it decides (`stmtflow.core._notes`); the unit adds what only the
runtime knows (an instance started, a child started, a step that failed with no retry policy,
a rewind) and, at each write, how the instance ended when that write ends it. `HistoryLog.take`
turns them into the `HistoryWrite` of that write's `Batch`, so an event is committed exactly
when the progress it records is: a crash before the commit loses both, and the same moves,
recomputed, note the same facts again.

What it costs: one row per event and, while snapshots are kept, one copy of the data and state
JSON per write that has events (docs/operations.md, "What history costs").
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stmtflow.core._notes import Note
from stmtflow.state import WorkflowStatus
from stmtflow.stores._history import HistoryEvent, HistoryWrite

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine

__all__ = ["History", "HistoryLog", "HistorySettings"]

_ENDINGS = {
    WorkflowStatus.FINISHED.value: "finished",
    WorkflowStatus.FAILED.value: "failed",
    WorkflowStatus.CANCELLED.value: "cancelled",
}


class History(builtins.list[HistoryEvent]):
    """What `Engine.history` returns: the kept events, oldest first, and ``dropped``, how many
    older ones the cap on the instance's history removed."""

    dropped: int = 0

    def __init__(self, events: builtins.list[HistoryEvent], dropped: int = 0) -> None:
        super().__init__(events)
        self.dropped = dropped


class HistorySettings:
    """The engine's history settings, checked once (`Engine(history=..., ...)`)."""

    __slots__ = ("enabled", "limit", "snapshots")

    def __init__(self, enabled: bool, limit: int, snapshots: int) -> None:
        if not isinstance(limit, int) or limit < 0:
            raise ValueError(f"history_limit must be an int >= 0, got {limit!r}")
        if not isinstance(snapshots, int) or snapshots < 0:
            raise ValueError(f"snapshots must be an int >= 0, got {snapshots!r}")
        self.enabled = enabled and limit > 0
        self.limit = limit
        self.snapshots = min(snapshots, limit)


class HistoryLog:
    """The history events of one unit not yet written."""

    __slots__ = ("engine", "notes", "status")

    def __init__(self, engine: Engine, status: str) -> None:
        self.engine = engine
        self.notes: list[Note] | None = [] if engine._history.enabled else None
        """What happened since the last write (the interpreter appends to it too); None when
        the engine keeps no history."""
        self.status = status
        """The status as last written, to tell the write that ends the instance."""

    def note(
        self,
        kind: str,
        *,
        thread_id: str | None = None,
        name: str | None = None,
        attempt: int | None = None,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Note a fact only the runtime knows, for the next write."""
        if self.notes is not None:
            self.notes.append(Note(kind, thread_id, name, attempt, error, detail))

    def take(self, status: str, error: str | None, data: str, state: str) -> HistoryWrite | None:
        """The history of the write about to be made (leaving ``status``, ``data`` and
        ``state``), or None when it has none; the notes are taken."""
        notes = self.notes
        if notes is None:
            return None
        if status != self.status:
            ending = _ENDINGS.get(status)
            if ending is not None:
                notes.append(Note(ending, error=error if ending == "failed" else None))
        if not notes:
            return None
        at = self.engine.clock().astimezone(UTC)
        events = tuple(_event(n, at) for n in notes)
        notes.clear()
        settings = self.engine._history
        return HistoryWrite(
            events=events,
            limit=settings.limit,
            snapshots=settings.snapshots,
            data=data,
            state=state,
        )

    def written(self, status: str) -> None:
        """A write leaving ``status`` was committed."""
        self.status = status


def _event(note: Note, at: datetime) -> HistoryEvent:
    return HistoryEvent(
        seq=0,
        at=at,
        kind=note.kind,
        thread_id=note.thread_id,
        name=note.name,
        attempt=note.attempt,
        error=note.error,
        detail=note.detail,
    )

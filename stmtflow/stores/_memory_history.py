"""The memory store's histories: each instance's events and snapshots in dicts, under the
store's lock, appended in the very operation that writes the record (`MemoryHistory`)."""

from __future__ import annotations

import builtins
import threading
from datetime import datetime

from stmtflow.stores._batch import Message
from stmtflow.stores._history import HistoryEvent, HistoryWrite, Snapshot, numbered, prunable
from stmtflow.stores._inputs import PendingInput
from stmtflow.stores.base import Record

__all__ = ["MemoryHistory"]


class MemoryHistory:
    """The `HistoryStore` methods of `stmtflow.stores.memory.MemoryStore`."""

    _lock: threading.RLock
    _records: dict[str, Record]
    _inbox: dict[str, dict[int, Message]]
    _inputs: dict[str, tuple[PendingInput, ...]]

    def _init_history(self) -> None:
        self._events: dict[str, builtins.list[HistoryEvent]] = {}
        self._last: dict[str, int] = {}
        self._snapshots: dict[str, dict[int, Snapshot]] = {}

    def _append_history(self, id: str, write: HistoryWrite) -> None:
        """Append ``write`` for instance ``id`` (under the lock, with the record's write)."""
        events = self._events.setdefault(id, [])
        new = numbered(write, self._last.get(id, 0))
        events.extend(new)
        top = new[-1].seq
        self._last[id] = top
        if len(events) > write.limit:
            del events[: len(events) - write.limit]
        snaps = self._snapshots.setdefault(id, {})
        if write.snapshots:
            snaps[top] = Snapshot(top, write.data, write.state)
        for seq in [s for s in snaps if s <= top - write.snapshots]:
            del snaps[seq]

    def history(self, id: str) -> tuple[builtins.list[HistoryEvent], int]:
        with self._lock:
            events = list(self._events.get(id, ()))
        return events, (events[0].seq - 1 if events else 0)

    def snapshot(self, id: str, seq: int) -> Snapshot | None:
        with self._lock:
            return self._snapshots.get(id, {}).get(seq)

    def prune(
        self,
        ended_before: datetime,
        *,
        workflow: str | None = None,
        limit: int = 100,
        now: datetime,
    ) -> builtins.list[str]:
        with self._lock:
            doomed = [
                r.id
                for r in self._records.values()
                if prunable(r, ended_before, now) and (workflow is None or r.workflow == workflow)
            ][:limit]
            for id in doomed:
                del self._records[id]
                for table in (self._events, self._last, self._snapshots, self._inbox, self._inputs):
                    table.pop(id, None)
            return doomed

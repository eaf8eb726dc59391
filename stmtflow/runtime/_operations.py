"""The engine's operations: history, rewind and fork, retention and pruning, stuck work.

A mixin of `Engine` (`Operations`), so the facade stays one page and each concern a module:
the history a unit writes is `stmtflow.runtime._history`'s, rewind and fork
`stmtflow.runtime._rewind`'s, stuck work `stmtflow.runtime._stuck`'s. docs/operations.md tells
how to use them.
"""

from __future__ import annotations

import builtins
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from stmtflow.runtime import _rewind
from stmtflow.runtime._history import History
from stmtflow.runtime._stuck import StuckItem, stuck
from stmtflow.stores._history import HistoryStore

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine
    from stmtflow.runtime._reads import Instance

__all__ = ["PRUNE_BATCH", "Operations"]

PRUNE_BATCH = 100
"""Ended instances deleted per transaction: a prune never holds the SQLite file for long."""


class Operations:
    """History, rewind, fork, prune and stuck: the `Engine` methods for operators."""

    retention: timedelta | None
    prune_interval: timedelta
    _prune_lock: threading.Lock
    _pruned_at: float

    @property
    def _engine(self) -> Engine:
        """This mixin as the `Engine` it is part of."""
        return cast("Engine", self)

    def history(self, id: str) -> History:
        """What happened to instance ``id``, oldest first: a list of `HistoryEvent` (with
        ``.dropped``, how many older events the cap removed).

        Each event was committed with the progress it records. Raises `NotFound` for an
        unknown id, `StmtflowError` for a store of your own that keeps no history (no
        `HistoryStore`).

        Example:
            >>> import stmtflow as sf
            >>> class One(sf.WorkflowState):
            ...     def definition(self):
            ...         return sf.S(sf.Step("a", lambda: None))
            >>> engine = sf.Engine("memory://", workflows=[One])
            >>> _ = engine.start(One, id="one")
            >>> [e.kind for e in engine.history("one")]
            ['started', 'step_completed', 'finished']
        """
        self._engine.store.get(id)
        events, dropped = _rewind.kept_history(self._engine, id)
        return History(events, dropped)

    def rewindable(self, id: str) -> set[int]:
        """The seqs of instance ``id``'s history events it can be rewound (or forked) to now:
        those whose snapshot is still kept."""
        return _rewind.rewindable(self._engine, id, self.history(id))

    def rewind(self, id: str, *, to: int) -> Instance:
        """Restore instance ``id``'s data and state as they stood right after history event
        ``to`` (one write, recorded as a ``rewound`` event); the next tick or worker carries on
        from there. Raises `RewindError` (nothing changed) when no snapshot is kept for that
        event or children stand in the way (docs/operations.md, "Rewind and fork")."""
        _rewind.rewind(self._engine, id, to)
        return self._engine.get(id)

    def fork(self, id: str, *, to: int, new_id: str) -> Instance:
        """Start instance ``new_id`` from the snapshot of ``id``'s history event ``to``; the
        original is not touched. Raises `RewindError` as `rewind` does, or when ``new_id``
        exists."""
        _rewind.fork(self._engine, id, to, new_id)
        return self._engine.get(new_id)

    def prune(self, *, older_than: timedelta | None = None) -> int:
        """Delete ended instances (finished, failed, cancelled) and their history; how many.

        With ``older_than``: every type's instances that ended longer ago than that. Without:
        each registered type's that ended longer ago than its class's ``retention`` (else the
        engine's ``retention``); a type with neither is kept. A waiting or running instance is
        never deleted, nor one with a teardown to retry or a live lease. Deletes in batches of
        `PRUNE_BATCH`, one short transaction each.
        """
        if older_than is not None and (
            not isinstance(older_than, timedelta) or older_than < timedelta(0)
        ):
            raise ValueError(f"older_than must be a timedelta >= 0, got {older_than!r}")
        total = 0
        for workflow, keep in self._retentions(older_than):
            while True:
                done = self._prune_batch(workflow, keep, PRUNE_BATCH)
                total += done
                if done < PRUNE_BATCH:
                    break
        return total

    def _retentions(
        self, older_than: timedelta | None
    ) -> builtins.list[tuple[str | None, timedelta]]:
        """(type or None for all, how long an ended instance is kept) to prune by."""
        if older_than is not None:
            return [(None, older_than)]
        found: builtins.list[tuple[str | None, timedelta]] = []
        for name, cls in self._engine._classes.items():
            keep = cls.retention if cls.retention is not None else self.retention
            if keep is not None:
                found.append((name, keep))
        return found

    def _prune_batch(self, workflow: str | None, keep: timedelta, limit: int) -> int:
        store = _rewind.history_store(self._engine)
        now = self._engine.clock()
        return len(store.prune(now - keep, workflow=workflow, limit=limit, now=now))

    def prune_some(self) -> int:
        """The worker's periodic prune: at most one batch per type, once per
        ``prune_interval`` (shared by the worker's threads); how many were deleted."""
        with self._prune_lock:
            moment = time.monotonic()
            if moment - self._pruned_at < self.prune_interval.total_seconds():
                return 0
            self._pruned_at = moment
        retentions = self._retentions(None)
        if not retentions or not isinstance(self._engine.store, HistoryStore):
            return 0
        return sum(self._prune_batch(w, k, PRUNE_BATCH) for w, k in retentions)

    def stuck(self, *, older_than: timedelta = timedelta(minutes=5)) -> list[StuckItem]:
        """Instances that should be moving and are not, each with why (a `StuckItem` per
        instance and reason): a lease that lapsed and nobody took over, a wake-up more than
        ``older_than`` ago that nobody ran, or latest units that all failed."""
        return stuck(self._engine, older_than)

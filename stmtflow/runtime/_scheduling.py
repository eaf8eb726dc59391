"""The `Engine`'s schedule methods, kept beside the engine as a mixin so the facade stays small.

Every rule lives in `stmtflow.runtime._schedules`; these methods check what the caller gave,
read the clock and say what they return.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stmtflow.errors import ConflictError, NotFound, ScheduleError
from stmtflow.runtime import _schedules
from stmtflow.runtime._schedules import Schedule

if TYPE_CHECKING:
    from stmtflow.dsl._workflow import WorkflowState
    from stmtflow.runtime._engine import Engine
    from stmtflow.runtime._reads import Instance

__all__ = ["Scheduling"]


class Scheduling:
    """Start workflows on a calendar (docs/operations.md, "Schedules")."""

    clock: Callable[[], datetime]

    def _as_engine(self) -> Engine:
        return self  # type: ignore[return-value]

    def schedule(
        self,
        name: str,
        workflow: str | type[WorkflowState],
        cron: str,
        *,
        input: WorkflowState | dict[str, Any] | None = None,
        timezone: str = "UTC",
        overlap: str = "skip",
        catchup: timedelta = timedelta(0),
    ) -> Schedule:
        """Start ``workflow`` with ``input`` at every fire time of ``cron`` in ``timezone``.

        Each fire starts the instance ``f"{name}@{fire time in UTC:%Y-%m-%dT%H:%M:%SZ}"``,
        once, whichever worker fires it. ``overlap`` (``"skip"``, ``"allow"``,
        ``"buffer_one"``) says what a fire does while the previous fire's instance still runs;
        ``catchup`` how old a fire missed while no worker ran may be and still run. A worker
        fires due schedules in its `tick`. The same ``name`` again replaces the schedule (its
        next fire computed afresh; the instance it started last still counts for overlap).

        Raises:
            ScheduleError: a bad name, cron expression, time zone, overlap, catch-up window or
                input, or a workflow not registered; nothing is stored.
        """
        engine = self._as_engine()
        fresh = _schedules.define(
            engine,
            name,
            workflow,
            cron,
            input=input,
            timezone=timezone,
            overlap=overlap,
            catchup=catchup,
            now=self.clock(),
        )
        while True:
            try:
                old = _schedules.load(engine, name)
            except NotFound:
                update: dict[str, Any] = {}
            else:
                # What the old one was doing carries over: the instance that counts for
                # overlap, and a fire decided but maybe not started yet.
                update = {"version": old.version, "last_id": old.last_id, "pending": old.pending}
            try:
                return _schedules.save(engine, fresh.model_copy(update=update))
            except ConflictError:
                continue

    def schedules(self) -> builtins.list[Schedule]:
        """Every stored schedule, by name."""
        return _schedules.all_schedules(self._as_engine())

    def unschedule(self, name: str) -> None:
        """Remove schedule ``name`` (the instances it started are left as they are).

        Raises:
            NotFound: no schedule has that name.
        """
        if not self._as_engine().store.delete_schedule(name):
            raise NotFound(f"no schedule named {name!r}")

    def pause_schedule(self, name: str) -> Schedule:
        """Stop firing schedule ``name`` until `resume_schedule` (`NotFound` if unknown)."""
        return _schedules.pause(self._as_engine(), name)

    def resume_schedule(self, name: str) -> Schedule:
        """Fire schedule ``name`` again, from its first fire time after now: fires missed while
        it was paused are skipped (`backfill` runs them). `NotFound` if unknown."""
        return _schedules.resume(self._as_engine(), name, self.clock())

    def trigger(self, name: str) -> Instance:
        """Start schedule ``name``'s workflow now, as a fire at the current second (whatever
        its overlap policy, paused or not); returns the instance. `NotFound` if unknown."""
        return _schedules.trigger(self._as_engine(), name, self.clock())

    def backfill(self, name: str, start: datetime, end: datetime) -> builtins.list[str]:
        """Start the instance of every fire time of schedule ``name`` from ``start``
        (included) to ``end`` (excluded), oldest first, ignoring overlap; fires started
        already (by a worker or an earlier backfill) are not started again. Returns the ids.

        Raises:
            NotFound: no schedule has that name.
            ScheduleError: ``end`` before ``start``, or more than `MAX_BACKFILL` fires.
            ValueError: a naive datetime.
        """
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            raise ScheduleError(f"backfill needs two datetimes, got {start!r} and {end!r}")
        return _schedules.backfill(self._as_engine(), name, start, end)

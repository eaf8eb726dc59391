"""`WorkflowHarness`'s schedules: fire a scheduled workflow on the harness's fake clock.

`WorkflowHarness.schedule` adds a schedule of the harness's workflow to its engine
(`Engine.schedule`); `WorkflowHarness.advance` then stops at each time a schedule is due, as
well as at each instance's wake-up, and fires it there the way a worker's tick does
(`stmtflow.runtime._schedules.fire_due`): a fire's instance starts and runs until it blocks,
and its later wake-ups (timers, retries) are served by the same ``advance``.

Example:
    >>> from datetime import timedelta
    >>> import stmtflow as sf
    >>> from stmtflow.testing import WorkflowHarness
    >>> class Report(sf.WorkflowState):
    ...     def definition(self) -> sf.Section:
    ...         return sf.S(sf.Step("send", lambda: None))
    >>> h = WorkflowHarness(Report)
    >>> h.schedule("daily", "0 6 * * *").next_fire.isoformat()
    '2024-01-01T06:00:00+00:00'
    >>> _ = h.advance(timedelta(days=2))
    >>> [(i.id, i.status.value) for i in h.fires()]
    [('daily@2024-01-01T06:00:00Z', 'finished'), ('daily@2024-01-02T06:00:00Z', 'finished')]
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import HarnessError
from stmtflow.runtime import Engine, Instance, Schedule, WorkerStats
from stmtflow.runtime._schedules import fire_due

__all__ = ["HarnessSchedules"]


class HarnessSchedules:
    """The schedule members of `WorkflowHarness` (a mixin: the harness holds the engine, the
    workflow and the clock)."""

    engine: Engine
    _wf: WorkflowState
    _id: str
    _now: datetime
    _scheduled: set[str]
    """The names of the schedules `schedule` added."""
    _stalled: set[tuple[str, int]]
    """Schedules (name, version) a fire left due without moving them (`_fire`); forgotten
    whenever an instance runs."""

    def schedule(
        self,
        name: str,
        cron: str,
        *,
        input: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
        overlap: str = "skip",
        catchup: timedelta = timedelta(0),
    ) -> Schedule:
        """Schedule this workflow (`Engine.schedule`) on the fake clock: `advance` stops at each
        fire time and starts that fire's instance, ``f"{name}@{time in UTC}"``; `fires` lists
        them. ``input`` is each instance's data, by default the harness's own. The harness's
        instance need not be started. `ScheduleError` for what `Engine.schedule` refuses.
        """
        data = self._wf if input is None else dict(input)
        made = self.engine.schedule(
            name,
            type(self._wf),
            cron,
            input=data,
            timezone=timezone,
            overlap=overlap,
            catchup=catchup,
        )
        self._scheduled.add(name)
        return made

    def fires(self) -> builtins.list[Instance]:
        """The instances this harness's schedules started (by a fire on the way of `advance`,
        or ``h.engine.trigger`` / ``h.engine.backfill``), in the order they were started."""
        return [
            inst
            for inst in self.engine.list()
            if inst.id != self._id and inst.id.partition("@")[0] in self._scheduled
        ]

    def _fire(self) -> None:
        """Fire what is due now, as a worker's tick does; a fire that fails is the test's.

        A schedule still due that the fire did not move waits for something else to happen
        first (a ``buffer_one`` fire held while the last instance runs): it is left out of
        `_next_fire` until an instance runs again (where a worker would just tick on).
        """
        store = self.engine.store
        before = {(r.name, r.version) for r in store.due_schedules(self._now)}
        stats = WorkerStats()
        fire_due(self.engine, self._now, stats)
        if stats.failed:
            raise HarnessError(f"at {self._now.isoformat()}: {stats.last_error}")
        after = {(r.name, r.version) for r in store.due_schedules(self._now)}
        self._stalled |= before & after

    def _next_fire(self, target: datetime) -> datetime | None:
        """When the earliest schedule due at or before ``target`` is due (stalled ones left out)."""
        for row in self.engine.store.due_schedules(target):
            if (row.name, row.version) not in self._stalled and row.due_at is not None:
                return row.due_at
        return None

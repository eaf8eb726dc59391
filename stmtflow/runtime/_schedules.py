"""Schedules: start a workflow instance on a cron calendar, exactly once per fire time.

A schedule is a `Schedule` kept in the store as one `ScheduleRow` (its JSON in ``spec``, when a
worker should look at it next in ``due_at``). Cron expressions are parsed and stepped by
`cronsim`, in the schedule's time zone (`zoneinfo`), so a daily 02:30 keeps local time across
daylight-saving changes: on a spring-forward day a time that does not exist fires at the first
minute after the gap (03:00), on a fall-back day a daily time that exists twice fires once (the
first), while an hourly schedule fires at both 01:00s (they are different instants).

Exactly once. Each fire starts the instance `fire_id` names (``NAME@YYYY-MM-DDTHH:MM:SSZ``, the
fire time in UTC), and a store creates an id once: two workers racing for one fire, a fire
repeated after a crash, and a backfill over times already fired start nothing twice. The
schedule itself moves on in rounds, each one compare-and-set write of its row that decides one
thing — the next fire to start is written as ``pending`` *before* it is started, and cleared
after — so a worker that loses the write starts nothing, and one that crashes between the
write and the start leaves the pending fire for the next tick to start (under the same id).

Overlap, when the instance of the previous fire still runs: ``"skip"`` drops the new fire,
``"allow"`` starts it anyway, ``"buffer_one"`` keeps the first such fire and starts it as soon as
the running one has ended (further fires meanwhile are dropped).

Catch-up: a worker that was down finds fires in the past. Those no older than ``catchup`` plus
`MISFIRE_GRACE` (so a worker polling every half second never misses a fire with the default
``catchup=timedelta(0)``) are run, oldest first; older ones are skipped.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, ValidationError

from stmtflow.errors import ConflictError, NotFound, ScheduleError, StmtflowError
from stmtflow.state import TERMINAL_STATUSES
from stmtflow.stores._schedules import ScheduleRow
from stmtflow.stores.base import aware

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine
    from stmtflow.runtime._reads import Instance, WorkerStats

__all__ = [
    "MAX_BACKFILL",
    "MISFIRE_GRACE",
    "OVERLAPS",
    "Schedule",
    "fire_due",
    "fire_id",
]

Overlap = Literal["skip", "allow", "buffer_one"]
OVERLAPS: tuple[str, ...] = ("skip", "allow", "buffer_one")
"""The overlap policies, for messages and the CLI."""

MISFIRE_GRACE = timedelta(minutes=1)
"""How late a fire may be found and still run when the catch-up window is zero."""

MAX_BACKFILL = 10_000
"""The most fires one `Engine.backfill` starts (a longer range is refused, nothing started)."""

_MAX_ROUNDS = 100
"""The most rounds one tick spends on one schedule (a long catch-up goes on next tick)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")


class Schedule(BaseModel):
    """A stored schedule: what it starts, when, and how far it got.

    Example:
        >>> import stmtflow as sf
        >>> class Report(sf.WorkflowState):
        ...     def definition(self):
        ...         return sf.S(sf.Step("send", lambda: None))
        >>> engine = sf.Engine("memory://", workflows=[Report])
        >>> s = engine.schedule("nightly", Report, "0 2 * * *", timezone="Europe/Paris")
        >>> s.overlap, s.paused
        ('skip', False)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Unique in the store; the prefix of the ids of the instances it starts."""
    workflow: str
    """The registered workflow type each fire starts."""
    cron: str
    """A cron expression (five fields, as `cronsim` reads them), in ``timezone``."""
    input: dict[str, Any] | None = None
    """The data each instance starts with (validated against the workflow when scheduled)."""
    timezone: str = "UTC"
    """An IANA time zone name; the cron expression is read in its local time."""
    overlap: Overlap = "skip"
    """What a fire does while the previous fire's instance still runs (module docstring)."""
    catchup: timedelta = timedelta(0)
    """How old a missed fire may be and still run after downtime (plus `MISFIRE_GRACE`)."""
    paused: bool = False
    """A paused schedule starts nothing (its missed fires are skipped on resume)."""
    next_fire: datetime | None = None
    """The next fire time not yet looked at (UTC)."""
    last_id: str | None = None
    """The instance the latest fire (or trigger) started, which ``overlap`` looks at."""
    buffered: datetime | None = None
    """A fire held back by ``overlap="buffer_one"`` until ``last_id`` ends."""
    pending: datetime | None = None
    """A fire decided on and about to start (set only between two writes of one round)."""
    version: int = 0
    """The stored row's version (compare-and-set)."""

    def fire_times(self, after: datetime) -> Iterator[datetime]:
        """The cron's fire times strictly after ``after``, in UTC."""
        return _fire_times(self.cron, self.timezone, after)


def fire_id(name: str, at: datetime) -> str:
    """The id of the instance schedule ``name`` starts for fire time ``at``.

    Example:
        >>> fire_id("nightly", datetime(2026, 3, 8, 7, 0, tzinfo=UTC))
        'nightly@2026-03-08T07:00:00Z'
    """
    return f"{name}@{aware(at, 'fire time'):%Y-%m-%dT%H:%M:%SZ}"


def _fire_times(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    local = aware(after, "after").astimezone(ZoneInfo(timezone))
    # cronsim's first time is the first whole minute strictly after its start.
    for at in CronSim(cron, local):
        yield at.astimezone(UTC)


def _first_after(cron: str, timezone: str, after: datetime) -> datetime | None:
    return next(_fire_times(cron, timezone, after), None)


# -- defining -------------------------------------------------------------------------------------


def define(
    engine: Engine,
    name: str,
    workflow: Any,
    cron: str,
    *,
    input: Any,
    timezone: str,
    overlap: str,
    catchup: timedelta,
    now: datetime,
) -> Schedule:
    """A new `Schedule` from what a user gave, every part checked; `ScheduleError` otherwise."""
    problems: list[str] = []
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(
            f"name {name!r} must be 1-200 letters, digits or '_.:-', starting with a letter "
            "or digit"
        )
    try:
        cls = engine.workflow_class(workflow)
    except (StmtflowError, TypeError) as exc:
        problems.append(str(exc))
        cls = None
    try:
        ZoneInfo(timezone)
        zone_ok = True
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        problems.append(f"unknown time zone {timezone!r} (expected an IANA name like 'UTC')")
        zone_ok = False
    if not isinstance(cron, str):
        problems.append(f"cron must be a string, got {cron!r}")
    else:
        try:
            CronSim(cron, now)
        except CronSimError as exc:
            problems.append(f"bad cron expression {cron!r}: {exc}")
    if overlap not in OVERLAPS:
        problems.append(f"unknown overlap {overlap!r} (expected one of {', '.join(OVERLAPS)})")
    if not isinstance(catchup, timedelta) or catchup < timedelta(0):
        problems.append(f"catchup must be a timedelta of zero or more, got {catchup!r}")
    data: dict[str, Any] | None = None
    if cls is not None:
        try:
            model = input if isinstance(input, cls) else cls.model_validate(input or {})
            data = None if input is None else model.model_dump(mode="json", exclude_unset=True)
        except ValidationError as exc:
            problems.append(f"input does not fit workflow {engine.type_name(cls)}: {exc}")
    if problems:
        raise ScheduleError(f"schedule {name!r} refused: " + "; ".join(problems))
    assert cls is not None and zone_ok
    return Schedule(
        name=name,
        workflow=engine.type_name(cls),
        cron=cron,
        input=data,
        timezone=timezone,
        overlap=overlap,  # type: ignore[arg-type]
        catchup=catchup,
        next_fire=_first_after(cron, timezone, now),
    )


def due_at(schedule: Schedule) -> datetime | None:
    """When a worker must look at ``schedule`` next (None: until someone resumes it)."""
    if schedule.pending is not None:
        return schedule.pending
    if schedule.paused:
        return None
    times = [t for t in (schedule.next_fire, schedule.buffered) if t is not None]
    return min(times) if times else None


def _row(schedule: Schedule) -> ScheduleRow:
    spec = schedule.model_dump_json(exclude={"version"})
    return ScheduleRow(name=schedule.name, spec=spec, due_at=due_at(schedule))


def _parse(row: ScheduleRow) -> Schedule:
    return Schedule.model_validate_json(row.spec).model_copy(update={"version": row.version})


def save(engine: Engine, schedule: Schedule) -> Schedule:
    """Write ``schedule`` compare-and-set on the version it was read at (0: a new one)."""
    row = engine.store.put_schedule(_row(schedule), expected_version=schedule.version)
    return schedule.model_copy(update={"version": row.version})


def load(engine: Engine, name: str) -> Schedule:
    """The stored schedule ``name``; `NotFound` naming it otherwise."""
    return _parse(engine.store.get_schedule(name))


def all_schedules(engine: Engine) -> builtins.list[Schedule]:
    """Every stored schedule, by name."""
    return [_parse(r) for r in engine.store.list_schedules()]


def change(engine: Engine, name: str, changes: Callable[[Schedule], dict[str, Any]]) -> Schedule:
    """Apply ``changes(current)`` to schedule ``name``, reading it again if another writer came
    first."""
    while True:
        current = load(engine, name)
        try:
            return save(engine, current.model_copy(update=changes(current)))
        except ConflictError:
            continue


def pause(engine: Engine, name: str) -> Schedule:
    """Stop firing ``name`` (a fire already pending still starts)."""
    return change(engine, name, lambda s: {"paused": True})


def resume(engine: Engine, name: str, now: datetime) -> Schedule:
    """Fire ``name`` again from its next fire time after ``now`` (the missed ones skipped)."""

    def resumed(s: Schedule) -> dict[str, Any]:
        if not s.paused:
            return {}
        return {"paused": False, "next_fire": _first_after(s.cron, s.timezone, now)}

    return change(engine, name, resumed)


# -- firing ---------------------------------------------------------------------------------------


def _start(engine: Engine, schedule: Schedule, at: datetime) -> Instance:
    return engine.start(schedule.workflow, schedule.input, id=fire_id(schedule.name, at))


def _running(engine: Engine, id: str | None) -> bool:
    if id is None:
        return False
    try:
        return engine.store.get(id).status not in TERMINAL_STATUSES
    except NotFound:
        return False  # pruned


def _round(engine: Engine, s: Schedule, now: datetime) -> Schedule | None:
    """Decide (and write) one step of ``s`` at ``now``; None when nothing is due."""
    if s.pending is not None:
        _start(engine, s, s.pending)
        return save(engine, s.model_copy(update={"pending": None}))
    if s.buffered is not None and not _running(engine, s.last_id):
        held = s.buffered
        return save(
            engine,
            s.model_copy(
                update={"buffered": None, "pending": held, "last_id": fire_id(s.name, held)}
            ),
        )
    at = s.next_fire
    if s.paused or at is None or at > now:
        return None
    window = s.catchup + MISFIRE_GRACE
    if now - at > window:  # missed too long ago: skip every fire older than the window
        skip_to = _first_after(s.cron, s.timezone, now - window - _TICK)
        return save(engine, s.model_copy(update={"next_fire": skip_to}))
    update: dict[str, Any] = {"next_fire": _first_after(s.cron, s.timezone, at)}
    if s.overlap == "allow" or not _running(engine, s.last_id):
        update |= {"pending": at, "last_id": fire_id(s.name, at)}
    elif s.overlap == "buffer_one" and s.buffered is None:
        update["buffered"] = at
    return save(engine, s.model_copy(update=update))


_TICK = timedelta(microseconds=1)


def fire_due(engine: Engine, now: datetime, stats: WorkerStats, limit: int = 100) -> int:
    """Start the instances of every schedule due at ``now``; how many were started.

    Each round is one compare-and-set write; a round lost to another worker leaves that
    schedule to it for this tick. A schedule whose round fails (its workflow is no longer
    registered, its start raised) is counted in ``stats`` and tried again next tick.
    """
    started = 0
    for row in engine.store.due_schedules(now, limit):
        s = _parse(row)
        for _ in range(_MAX_ROUNDS):
            starting = s.pending is not None
            try:
                moved = _round(engine, s, now)
            except ConflictError:
                break
            except (StmtflowError, ValidationError) as exc:
                stats.failed += 1
                stats.last_error = f"schedule {s.name}: {exc}"
                break
            if moved is None:
                break
            started += starting
            s = moved
    return started


def trigger(engine: Engine, name: str, now: datetime) -> Instance:
    """Start ``name``'s workflow now (whatever its overlap or pause), as the fire at ``now``
    (to the second: two triggers in one second start one instance).

    A trigger moves the schedule as a fire does: one compare-and-set round records it as
    ``pending`` and as ``last_id``, then it is started and the pending mark cleared. A worker
    that fires meanwhile either came first (its round is read again, and a fire it left
    pending is started first) or sees the trigger's (and, with ``overlap="skip"``, the
    instance the trigger started); neither overwrites what the other recorded. A start that
    raises clears the mark too: the caller was told, and no worker starts it later.
    """
    at = aware(now, "now").replace(microsecond=0)
    while True:
        s = load(engine, name)
        try:
            if s.pending is not None:  # a fire decided by a worker that has not cleared it
                _round(engine, s, at)
                continue
            s = save(engine, s.model_copy(update={"pending": at, "last_id": fire_id(name, at)}))
        except ConflictError:
            continue
        break
    try:
        return _start(engine, s, at)
    finally:  # also when the start raised: the caller hears of it, no worker retries it
        _clear_pending(engine, s, at)


def _clear_pending(engine: Engine, s: Schedule, at: datetime) -> None:
    """Clear the pending fire ``at`` of ``s`` unless a worker's round did it already."""
    while s.pending == at:
        try:
            save(engine, s.model_copy(update={"pending": None}))
            return
        except ConflictError:
            try:
                s = load(engine, s.name)
            except NotFound:  # removed meanwhile (its instances are kept)
                return


def backfill(engine: Engine, name: str, start: datetime, end: datetime) -> builtins.list[str]:
    """Start the instance of every fire time of ``name`` in ``[start, end)``, oldest first,
    whatever its overlap; those already started (by the worker or an earlier backfill) are
    left as they are. Returns the ids, in fire order."""
    s = load(engine, name)
    begin, stop = aware(start, "start"), aware(end, "end")
    if stop < begin:
        raise ScheduleError(f"backfill of schedule {name!r}: end {end} is before start {start}")
    times: list[datetime] = []
    for at in s.fire_times(begin - _TICK):
        if at >= stop:
            break
        times.append(at)
        if len(times) > MAX_BACKFILL:
            raise ScheduleError(
                f"backfill of schedule {name!r} from {start} to {end} has more than "
                f"{MAX_BACKFILL} fires; split the range (nothing was started)"
            )
    return [_start(engine, s, at).id for at in times]

"""The Redis store's schedules: a hash per schedule and a sorted set of when each is due.

Keys, with ``P`` the prefix:

=======================  =================================================================
``P:sched:<name>``       hash: ``spec``, ``version``, ``due_at`` (absent while None)
``P:schedules``          sorted set: every name, score 0 (so listed by name's bytes)
``P:sched-due``          sorted set: the names with a ``due_at``, scored by it
=======================  =================================================================

A write is one script that checks the version and writes the hash and both sets, so a worker
that lost the race to another writes nothing (`ConflictError`), and the due index never names
a time the hash does not hold. Finding due schedules is one ``ZRANGEBYSCORE ... LIMIT`` on
``P:sched-due``: an idle tick costs the same with ten schedules as with a million.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from stmtflow.stores._redis_codec import fields, micros, opt_time, time_from
from stmtflow.stores._schedules import ScheduleRow, missing_schedule, schedule_conflict
from stmtflow.stores.base import aware

__all__ = [
    "SCHEDULE_DELETE",
    "SCHEDULE_DUE",
    "SCHEDULE_GET",
    "SCHEDULE_LIST",
    "SCHEDULE_PUT",
    "RedisSchedules",
]

_HEAD = """
local P = ARGV[1]
local function skey(name) return P .. ':sched:' .. name end
"""

SCHEDULE_PUT = (
    _HEAD
    + """
-- ARGV: prefix, name, spec, due_at (opt), expected version ('0': not stored yet).
-- {'ok', version} or {'refused', found version or ''}.
local name, due = ARGV[2], ARGV[4]
local k = skey(name)
local found = redis.call('HGET', k, 'version')
if (found or '0') ~= ARGV[5] then return {'refused', found or ''} end
redis.call('HSET', k, 'spec', ARGV[3])
local version = redis.call('HINCRBY', k, 'version', 1)
if due == '' then
  redis.call('HDEL', k, 'due_at')
  redis.call('ZREM', P .. ':sched-due', name)
else
  redis.call('HSET', k, 'due_at', string.sub(due, 2))
  redis.call('ZADD', P .. ':sched-due', string.sub(due, 2), name)
end
redis.call('ZADD', P .. ':schedules', 0, name)
return {'ok', version}
"""
)

SCHEDULE_DELETE = (
    _HEAD
    + """
-- ARGV: prefix, name. 1 if it was stored.
local name = ARGV[2]
redis.call('ZREM', P .. ':sched-due', name)
redis.call('ZREM', P .. ':schedules', name)
return redis.call('DEL', skey(name))
"""
)

SCHEDULE_GET = (
    _HEAD
    + """
-- ARGV: prefix, name. Its fields (none: not stored).
return redis.call('HGETALL', skey(ARGV[2]))
"""
)

SCHEDULE_LIST = (
    _HEAD
    + """
-- ARGV: prefix. Every schedule as {name, fields}, by name.
local out = {}
for _, name in ipairs(redis.call('ZRANGE', P .. ':schedules', 0, -1)) do
  out[#out + 1] = {name, redis.call('HGETALL', skey(name))}
end
return out
"""
)

SCHEDULE_DUE = (
    _HEAD
    + """
-- ARGV: prefix, now, limit (> 0). The schedules due at now as {name, fields}, earliest first
-- (equal times by name).
local out = {}
local due = redis.call('ZRANGEBYSCORE', P .. ':sched-due', '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, name in ipairs(due) do
  out[#out + 1] = {name, redis.call('HGETALL', skey(name))}
end
return out
"""
)


def _row(name: str, flat: Sequence[str]) -> ScheduleRow:
    f = fields(flat)
    return ScheduleRow(
        name=name, spec=f["spec"], due_at=time_from(f.get("due_at")), version=int(f["version"])
    )


class RedisSchedules:
    """The schedule methods of `stmtflow.stores.redis.RedisStore` (one script or command each)."""

    prefix: str

    def _run(self, name: str, *args: str | int) -> Any:
        raise NotImplementedError  # the store's own: runs a script with the key prefix

    def put_schedule(self, row: ScheduleRow, *, expected_version: int) -> ScheduleRow:
        """Write ``row`` if the stored version is ``expected_version`` (0: not stored yet)."""
        due = None if row.due_at is None else aware(row.due_at, "due_at")
        answer = self._run("SCHEDULE_PUT", row.name, row.spec, opt_time(due), str(expected_version))
        if answer[0] != "ok":
            found = int(answer[1]) if answer[1] else None
            raise schedule_conflict(row.name, expected_version, found)
        return ScheduleRow(row.name, row.spec, due, int(answer[1]))

    def get_schedule(self, name: str) -> ScheduleRow:
        """The schedule named ``name``; `NotFound` if there is none."""
        rows = self._run("SCHEDULE_GET", name)
        if not rows:
            raise missing_schedule(name)
        return _row(name, rows)

    def list_schedules(self) -> builtins.list[ScheduleRow]:
        """Every schedule, by name."""
        return [_row(name, flat) for name, flat in self._run("SCHEDULE_LIST")]

    def delete_schedule(self, name: str) -> bool:
        """Remove the schedule; False if there was none."""
        return bool(self._run("SCHEDULE_DELETE", name))

    def due_schedules(self, now: datetime, limit: int = 100) -> builtins.list[ScheduleRow]:
        """Schedules with ``due_at <= now``, earliest first, at most ``limit``."""
        if limit <= 0:
            return []
        rows = self._run("SCHEDULE_DUE", micros(aware(now, "now")), limit)
        return [_row(name, flat) for name, flat in rows]

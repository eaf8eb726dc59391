"""The Redis store's histories, written by the script that writes the progress they record,
and pruning (`stmtflow.stores._history`).

A `Batch`'s ``history`` travels as arguments of the script that checks and writes the instance
(`_redis_lua.UPDATE`, ``UPDATE_FREE``): the script numbers the events from a counter in the
record's own hash, so the events and the write are one atomic step and a refused write records
nothing. Redis trims exactly at every write (an ``LTRIM``, and popping snapshots past their
cap), where the SQL stores trim every `TRIM_EVERY` events. Keys, with ``P`` the prefix:

=========================  ==============================================================
``P:history:<id>``         list: the kept events, oldest first, each ``[seq, snapshot, ...]``
                           as JSON (`decode`); the last seq is field ``history_seq`` of
                           ``P:rec:<id>``
``P:snapshots:<id>``       list: the seqs that have a snapshot, oldest first
``P:snapshot:<id>``        hash: ``<seq>:data`` and ``<seq>:state`` of each snapshot
``P:ended``                sorted set: the ended (finished, failed, cancelled) ids, scored by
                           the time of their last write (``updated_at``)
``P:ended:workflow:<t>``   the same for one workflow type
=========================  ==============================================================

`RedisHistory.prune` reads ``P:ended`` from its oldest end and deletes each instance with every
key it has: record, state parts, indexes, inbox, pending inputs, history; it leaves the
instance's outbox rows (delivered later) and its own children's index (its children keep
naming it as their parent, as on the SQL stores).
"""

from __future__ import annotations

import builtins
import json
from datetime import datetime
from typing import Any

from stmtflow.stores._history import HistoryEvent, HistoryWrite, Snapshot
from stmtflow.stores._redis_codec import micros, time_from
from stmtflow.stores.base import aware

__all__ = ["HISTORY_LUA", "PRUNE_LUA", "RedisHistory", "decode", "history_args"]

HISTORY_LUA = """
-- ARGV[a ..]: '' (no history), or n, limit, snapshots, data, state, n events (JSON arrays
-- without seq and snapshot). Numbers the events on from the record's history_seq, keeps the
-- last `limit`, and the snapshots of the last `snapshots` seqs. Returns the next index.
local function write_history(k, id, a)
  if ARGV[a] == '' then return a + 1 end
  local n, limit, snaps = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local hk, lk, sk = P .. ':history:' .. id, P .. ':snapshots:' .. id, P .. ':snapshot:' .. id
  local top = redis.call('HINCRBY', k, 'history_seq', n)
  local mark = 'null'
  if snaps > 0 then mark = tostring(top) end
  for j = 1, n do
    local body = ARGV[a + 4 + j]
    redis.call('RPUSH', hk, '[' .. (top - n + j) .. ',' .. mark .. ',' .. string.sub(body, 2))
  end
  redis.call('LTRIM', hk, 0 - limit, -1)
  if snaps > 0 then
    redis.call('HSET', sk, top .. ':data', ARGV[a + 3], top .. ':state', ARGV[a + 4])
    redis.call('RPUSH', lk, top)
  end
  while true do
    local seq = redis.call('LINDEX', lk, 0)
    if not seq or tonumber(seq) > top - snaps then break end
    redis.call('LPOP', lk)
    redis.call('HDEL', sk, seq .. ':data', seq .. ':state')
  end
  return a + 5 + n
end

-- Delete instance `id` with every key it has (not its outbox rows, nor its children's index).
local function drop_instance(id)
  local k = rkey(id)
  local f = redis.call('HMGET', k, 'status', 'workflow', 'parent_id')
  local status, workflow = f[1], f[2]
  for _, key in ipairs({P .. ':created', P .. ':workflow:' .. workflow, by_status(status),
      by_both(status, workflow), P .. ':due', P .. ':resuming', P .. ':resuming-at',
      P .. ':posted', P .. ':ended', P .. ':ended:workflow:' .. workflow}) do
    redis.call('ZREM', key, id)
  end
  if f[3] then redis.call('ZREM', P .. ':children:' .. f[3], id) end
  drop_inputs(id)
  for _, part in ipairs({':parts:', ':inbox:', ':msg:', ':fresh:', ':keys:', ':history:',
      ':snapshots:', ':snapshot:'}) do
    redis.call('DEL', P .. part .. id)
  end
  redis.call('DEL', k)
end
"""
"""Lua functions for the scripts (appended to their common part, after the inbox's)."""

PRUNE_LUA = """
-- ARGV: prefix, ended before, now, workflow ('' any), limit (> 0). Deletes up to `limit` ended
-- instances last written before `ended before`, oldest first, skipping one with a wake-up (a
-- teardown to retry) or a live lease; their ids.
local before, now, workflow, limit = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local index = P .. ':ended'
if workflow ~= '' then index = P .. ':ended:workflow:' .. workflow end
local out, skipped = {}, 0
while #out < limit do
  local ids = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. before, 'LIMIT', skipped, limit)
  for _, id in ipairs(ids) do
    if #out < limit then
      local k = rkey(id)
      local f = redis.call('HMGET', k, 'status', 'wake_at')
      if not f[1] then
        redis.call('ZREM', index, id)
      elseif ENDED[f[1]] and not f[2] and not lease_live(k, now) then
        drop_instance(id)
        out[#out + 1] = id
      else
        skipped = skipped + 1
      end
    end
  end
  if #ids < limit then break end
end
return out
"""
"""The body of `_redis_lua.PRUNE` (after the common part)."""


def history_args(write: HistoryWrite | None) -> list[str]:
    """The `write_history` arguments of a batch's history (``[""]`` for none)."""
    if write is None or not write.events:
        return [""]
    snaps = write.snapshots
    args = [str(len(write.events)), str(write.limit), str(snaps)]
    args += [write.data if snaps else "", write.state if snaps else ""]
    for e in write.events:
        row = [int(micros(e.at)), e.kind, e.thread_id, e.name, e.attempt, e.error, e.detail]
        args.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
    return args


def decode(text: str) -> HistoryEvent:
    """The `HistoryEvent` of one element of ``P:history:<id>``."""
    seq, snap, micros_at, kind, thread_id, name, attempt, error, detail = json.loads(text)
    at = time_from(str(micros_at))
    assert at is not None
    return HistoryEvent(
        seq=seq,
        at=at,
        kind=kind,
        thread_id=thread_id,
        name=name,
        attempt=attempt,
        error=error,
        detail=detail,
        snapshot=snap,
    )


class RedisHistory:
    """The `HistoryStore` methods of `stmtflow.stores.redis.RedisStore`."""

    prefix: str
    _redis: Any

    def _run(self, name: str, *args: str | int) -> Any:
        raise NotImplementedError  # the store's own: runs a script with the key prefix

    def history(self, id: str) -> tuple[builtins.list[HistoryEvent], int]:
        events = [decode(t) for t in self._redis.lrange(f"{self.prefix}:history:{id}", 0, -1)]
        return events, (events[0].seq - 1 if events else 0)

    def snapshot(self, id: str, seq: int) -> Snapshot | None:
        data, state = self._redis.hmget(
            f"{self.prefix}:snapshot:{id}", f"{seq}:data", f"{seq}:state"
        )
        return None if data is None or state is None else Snapshot(seq, data, state)

    def prune(
        self,
        ended_before: datetime,
        *,
        workflow: str | None = None,
        limit: int = 100,
        now: datetime,
    ) -> builtins.list[str]:
        before, now = aware(ended_before, "ended_before"), aware(now, "now")
        if limit <= 0:
            return []
        return list(self._run("PRUNE", micros(before), micros(now), workflow or "", limit))

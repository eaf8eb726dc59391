"""The Lua scripts of the Redis store: each is one atomic step on the server.

Redis runs a script to the end before any other command, so a check and the write it guards
(version, fence, lease) cannot be separated by another client. Every script takes the key prefix
as ``ARGV[1]`` and builds its key names from it (`stmtflow.stores.redis` lists the layout).

Times travel as decimal strings of microseconds since the Unix epoch and are written exactly as
received: Lua numbers are doubles, which compare such values exactly (below 2**53) but print
them rounded, so a script compares with ``tonumber`` and never writes a number it computed,
except the counters ``HINCRBY`` keeps. An optional argument is ``""`` for None and ``"=value"``
for a value (so an empty string stays distinguishable from None).

Every script answers ``{"ok", ...}``, ``{"refused", <the record>}`` (so the caller can say why
without reading again), ``{"exists"}`` or ``{"missing"}``. A record travels as ``{fields}``, or
``{fields, pieces}`` for a state kept in parts (`stmtflow.stores._redis_parts`), where
``pieces`` is the ``P:parts:<id>`` hash, or empty when the caller said it knows that version.
"""

from __future__ import annotations

from stmtflow.stores._redis_history import HISTORY_LUA, PRUNE_LUA
from stmtflow.stores._redis_inbox import INBOX, INBOX_LUA, KNOWN_KEY, POST
from stmtflow.stores._redis_locks import LOCKS_LUA
from stmtflow.stores._redis_outbox import (
    OUTBOX_CLAIM,
    OUTBOX_LIST,
    OUTBOX_LUA,
    OUTBOX_RETRY,
    OUTBOX_SENT,
)
from stmtflow.stores._redis_schedules import (
    SCHEDULE_DELETE,
    SCHEDULE_DUE,
    SCHEDULE_GET,
    SCHEDULE_LIST,
    SCHEDULE_PUT,
)

__all__ = [
    "CLAIM",
    "CLAIM_DUE",
    "CREATE",
    "FILL_ENDED",
    "GET",
    "INBOX",
    "INPUTS",
    "KNOWN_KEY",
    "LIST",
    "OUTBOX_CLAIM",
    "OUTBOX_LIST",
    "OUTBOX_RETRY",
    "OUTBOX_SENT",
    "POST",
    "PRUNE",
    "RELEASE",
    "RENEW",
    "SCHEDULE_DELETE",
    "SCHEDULE_DUE",
    "SCHEDULE_GET",
    "SCHEDULE_LIST",
    "SCHEDULE_PUT",
    "UPDATE",
    "UPDATE_FREE",
]

_COMMON = (
    """
local P = ARGV[1]
local function rkey(id) return P .. ':rec:' .. id end
local function opt(k, name, value)
  if value == '' then
    redis.call('HDEL', k, name)
  else
    redis.call('HSET', k, name, string.sub(value, 2))
  end
end
local function lease_live(k, now)
  local expires = redis.call('HGET', k, 'lease_expires')
  return expires and tonumber(expires) >= tonumber(now)
end
local function by_status(status) return P .. ':status:' .. status end
local function by_both(status, workflow)
  return P .. ':status:' .. status .. ':workflow:' .. workflow
end
local KEPT = {'workflow', 'created_at', 'fence', 'lease_owner', 'lease_expires'}
local ENDED = {finished = true, failed = true, cancelled = true}

-- The ended ids by the time of their last write, for prune (`_redis_history`).
local function file_ended(id, status, workflow, at)
  local all, typed = P .. ':ended', P .. ':ended:workflow:' .. workflow
  if ENDED[status] then
    redis.call('ZADD', all, at, id)
    redis.call('ZADD', typed, at, id)
  else
    redis.call('ZREM', all, id)
    redis.call('ZREM', typed, id)
  end
end

-- A record as the client reads it; its pieces unless it is at version `known` (or kept whole).
local function full_record(k, id, known)
  local fields = redis.call('HGETALL', k)
  if redis.call('EXISTS', P .. ':inbox:' .. id) == 1 then
    fields[#fields + 1] = 'inbox'
    fields[#fields + 1] = '1'
  end
  if redis.call('HEXISTS', k, 'parts') == 0 then return {fields} end
  if known ~= '' and redis.call('HGET', k, 'version') == known then return {fields, {}} end
  return {fields, redis.call('HGETALL', P .. ':parts:' .. id)}
end

-- ARGV[a ..]: 'whole' | 'full' | 'delta', n, n positions to drop, m, m (position, piece), tail.
local function write_state(k, id, a)
  local pk = P .. ':parts:' .. id
  if ARGV[a] == 'whole' then
    redis.call('DEL', pk)
    redis.call('HDEL', k, 'parts')
    return a + 1
  end
  if ARGV[a] == 'full' then redis.call('DEL', pk) end
  local i = a + 1
  for _ = 1, tonumber(ARGV[i]) do
    i = i + 1
    redis.call('HDEL', pk, ARGV[i])
  end
  i = i + 1
  for _ = 1, tonumber(ARGV[i]) do
    redis.call('HSET', pk, ARGV[i + 1], ARGV[i + 2])
    i = i + 2
  end
  redis.call('HSET', pk, 'tail', ARGV[i + 1])
  redis.call('HSET', k, 'parts', '1')
  return i + 2
end

-- ARGV[a ..]: '' (leave the instance's pending-input rows), or n, then n rows of
-- (member, asked_at, assignee or '', workflow, row): replace them all.
local function drop_inputs(id)
  local own = P .. ':inputs-of:' .. id
  local old = redis.call('HGETALL', own)
  for j = 1, #old, 2 do
    for key in string.gmatch(old[j + 1], '[^\\n]+') do redis.call('ZREM', key, old[j]) end
    redis.call('HDEL', P .. ':input', old[j])
  end
  redis.call('DEL', own)
end

local function write_inputs(id, a)
  if ARGV[a] == '' then return a + 1 end
  drop_inputs(id)
  local own = P .. ':inputs-of:' .. id
  local i = a + 1
  for _ = 1, tonumber(ARGV[a]) do
    local member, at, assignee, workflow = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local keys = {P .. ':inputs', P .. ':inputs:workflow:' .. workflow}
    if assignee ~= '' then keys[#keys + 1] = P .. ':inputs:assignee:' .. assignee end
    for _, key in ipairs(keys) do redis.call('ZADD', key, at, member) end
    redis.call('HSET', P .. ':input', member, ARGV[i + 4])
    redis.call('HSET', own, member, table.concat(keys, '\\n'))
    i = i + 5
  end
  return i
end

-- A resuming record is claimable whatever its wake-up: without one it waits in P:resuming (by
-- created_at), with one in P:resuming-at (by wake_at), where claim_due finds it even early.
local function file_resuming(id, status, wake, created)
  redis.call('ZREM', P .. ':resuming', id)
  redis.call('ZREM', P .. ':resuming-at', id)
  if status ~= 'resuming' then return end
  if wake == '' then
    redis.call('ZADD', P .. ':resuming', created, id)
  else
    redis.call('ZADD', P .. ':resuming-at', string.sub(wake, 2), id)
  end
end

-- ARGV[a .. a+5]: data, state, status, wake_at (opt), error (opt), updated_at.
local function write_data(k, id, a)
  local status, wake = ARGV[a + 2], ARGV[a + 3]
  local old = redis.call('HMGET', k, 'status', 'workflow', 'created_at')
  if old[1] ~= status then
    redis.call('ZREM', by_status(old[1]), id)
    redis.call('ZREM', by_both(old[1], old[2]), id)
    redis.call('ZADD', by_status(status), old[3], id)
    redis.call('ZADD', by_both(status, old[2]), old[3], id)
  end
  if old[1] == 'resuming' or status == 'resuming' then file_resuming(id, status, wake, old[3]) end
  if ENDED[old[1]] or ENDED[status] then file_ended(id, status, old[2], ARGV[a + 5]) end
  redis.call('HSET', k, 'data', ARGV[a], 'state', ARGV[a + 1], 'status', status,
    'updated_at', ARGV[a + 5])
  opt(k, 'wake_at', wake)
  opt(k, 'error', ARGV[a + 4])
  if wake == '' then
    redis.call('ZREM', P .. ':due', id)
  else
    redis.call('ZADD', P .. ':due', string.sub(wake, 2), id)
  end
  redis.call('HINCRBY', k, 'version', 1)
end

-- ARGV[a ..]: id, workflow, data, state (or its head), status, wake_at (opt), lease_owner
-- (opt), lease_expires (opt), error (opt), created_at, updated_at, parent_id (opt), root_id,
-- parent_event (opt), on_parent_end (opt), write_state's and write_inputs' arguments.
-- Creates the record unless its id exists; 1 if it did.
local function create_record(a)
  local id, workflow, status, created = ARGV[a], ARGV[a + 1], ARGV[a + 4], ARGV[a + 9]
  local k = rkey(id)
  if redis.call('EXISTS', k) == 1 then return 0 end
  local fence = '0'
  if ARGV[a + 6] ~= '' then fence = '1' end
  redis.call('HSET', k, 'id', id, 'workflow', workflow, 'data', ARGV[a + 2],
    'state', ARGV[a + 3], 'status', status, 'version', '1', 'fence', fence,
    'created_at', created, 'updated_at', ARGV[a + 10], 'root_id', ARGV[a + 12])
  opt(k, 'wake_at', ARGV[a + 5])
  opt(k, 'lease_owner', ARGV[a + 6])
  opt(k, 'lease_expires', ARGV[a + 7])
  opt(k, 'error', ARGV[a + 8])
  opt(k, 'parent_id', ARGV[a + 11])
  opt(k, 'parent_event', ARGV[a + 13])
  opt(k, 'on_parent_end', ARGV[a + 14])
  write_inputs(id, write_state(k, id, a + 15))
  redis.call('ZADD', P .. ':created', created, id)
  redis.call('ZADD', P .. ':workflow:' .. workflow, created, id)
  redis.call('ZADD', by_status(status), created, id)
  redis.call('ZADD', by_both(status, workflow), created, id)
  if ARGV[a + 11] ~= '' then
    redis.call('ZADD', P .. ':children:' .. string.sub(ARGV[a + 11], 2), created, id)
  end
  file_resuming(id, status, ARGV[a + 5], created)
  if ENDED[status] then file_ended(id, status, workflow, ARGV[a + 10]) end
  if ARGV[a + 5] ~= '' then redis.call('ZADD', P .. ':due', string.sub(ARGV[a + 5], 2), id) end
  return 1
end
"""
    + INBOX_LUA
    + LOCKS_LUA
    + OUTBOX_LUA
    + HISTORY_LUA
)

CREATE = (
    _COMMON
    + """
-- ARGV: prefix, create_record's arguments
if create_record(2) == 0 then return {'exists'} end
return {'ok', {redis.call('HGETALL', rkey(ARGV[2]))}}
"""
)

UPDATE = (
    _COMMON
    + """
-- ARGV: prefix, id, expected_version, fence (opt), release ('1' or '0'), write_data's 6,
--       write_state's, write_inputs', apply_batch's, write_emit's, write_history's and
--       apply_locks' arguments
local id = ARGV[2]
local k = rkey(id)
local cur = redis.call('HMGET', k, 'version', 'fence', 'lease_owner')
if not cur[1] then return {'missing'} end
local fence = ARGV[4]
if tonumber(cur[1]) ~= tonumber(ARGV[3]) or (fence ~= '' and
    (tonumber(cur[2]) ~= tonumber(string.sub(fence, 2)) or not cur[3])) then
  return {'refused', full_record(k, id, '')}
end
write_data(k, id, 6)
local after = write_emit(apply_batch(id, write_inputs(id, write_state(k, id, 12))))
apply_locks(id, write_history(k, id, after))
if ARGV[5] == '1' then redis.call('HDEL', k, 'lease_owner', 'lease_expires') end
return {'ok', redis.call('HMGET', k, unpack(KEPT))}
"""
)

UPDATE_FREE = (
    _COMMON
    + """
-- ARGV: prefix, id, expected_version, now, owner (opt), lease_expires (opt), write_data's 6,
--       write_state's, write_inputs', apply_batch's, write_emit's, write_history's and
--       apply_locks' arguments
local id, now = ARGV[2], ARGV[4]
local k = rkey(id)
local version = redis.call('HGET', k, 'version')
if not version then return {'missing'} end
if tonumber(version) ~= tonumber(ARGV[3]) or lease_live(k, now) then
  return {'refused', full_record(k, id, '')}
end
write_data(k, id, 7)
local after = write_emit(apply_batch(id, write_inputs(id, write_state(k, id, 13))))
apply_locks(id, write_history(k, id, after))
if ARGV[5] == '' then
  redis.call('HDEL', k, 'lease_owner', 'lease_expires')
else
  redis.call('HSET', k, 'lease_owner', string.sub(ARGV[5], 2),
    'lease_expires', string.sub(ARGV[6], 2))
  redis.call('HINCRBY', k, 'fence', 1)
end
return {'ok', redis.call('HMGET', k, unpack(KEPT))}
"""
)

CLAIM_DUE = (
    _COMMON
    + """
-- ARGV: prefix, now, owner, lease_expires, limit. In claim order: resuming work with no
-- wake-up (left by a crash) by creation; then due wake-ups by wake_at; then resuming work whose
-- wake-up is still ahead; then instances holding new messages, by arrival. Only ids in those
-- sets are read (and skipped while leased).
local now, owner, expires, limit = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local out = {}
local function take(id)
  local k = rkey(id)
  if lease_live(k, now) then return end
  redis.call('HSET', k, 'lease_owner', owner, 'lease_expires', expires)
  redis.call('HINCRBY', k, 'fence', 1)
  out[#out + 1] = full_record(k, id, '')
end
local function scan(key, min, max)
  local offset = 0
  while #out < limit do
    local ids = redis.call('ZRANGEBYSCORE', key, min, max, 'LIMIT', offset, limit)
    for _, id in ipairs(ids) do
      if #out < limit then take(id) end
    end
    if #ids < limit then return end
    offset = offset + #ids
  end
end
scan(P .. ':resuming', '-inf', '+inf')
scan(P .. ':due', '-inf', now)
scan(P .. ':resuming-at', '(' .. now, '+inf')
scan(P .. ':posted', '-inf', '+inf')
return out
"""
)

CLAIM = (
    _COMMON
    + """
-- ARGV: prefix, id, owner, now, lease_expires
local k = rkey(ARGV[2])
local holder = redis.call('HMGET', k, 'version', 'lease_owner')
if not holder[1] then return {'missing'} end
if holder[2] and holder[2] ~= ARGV[3] and lease_live(k, ARGV[4]) then
  return {'refused', full_record(k, ARGV[2], '')}
end
redis.call('HSET', k, 'lease_owner', ARGV[3], 'lease_expires', ARGV[5])
redis.call('HINCRBY', k, 'fence', 1)
return {'ok', full_record(k, ARGV[2], '')}
"""
)

RENEW = (
    _COMMON
    + """
-- ARGV: prefix, id, owner, fence, lease_expires
local k = rkey(ARGV[2])
local cur = redis.call('HMGET', k, 'version', 'lease_owner', 'fence')
if not cur[1] then return {'missing'} end
if cur[2] ~= ARGV[3] or tonumber(cur[3]) ~= tonumber(ARGV[4]) then
  return {'refused', full_record(k, ARGV[2], '')}
end
redis.call('HSET', k, 'lease_expires', ARGV[5])
return {'ok', full_record(k, ARGV[2], '')}
"""
)

RELEASE = (
    _COMMON
    + """
-- ARGV: prefix, id, owner, fence
local k = rkey(ARGV[2])
local cur = redis.call('HMGET', k, 'version', 'lease_owner', 'fence')
if not cur[1] then return {'missing'} end
if cur[2] ~= ARGV[3] or tonumber(cur[3]) ~= tonumber(ARGV[4]) then return {'ok', 0} end
redis.call('HDEL', k, 'lease_owner', 'lease_expires')
return {'ok', 1}
"""
)

LIST = (
    _COMMON
    + """
-- ARGV: prefix, index key suffix, limit (-1: all), status ('' any), workflow ('' any).
-- One atomic read of ids and records; the filters serve the children index, which holds
-- every child of one parent whatever its status and type.
local limit, status, workflow = tonumber(ARGV[3]), ARGV[4], ARGV[5]
if status == '' and workflow == '' then
  local last = -1
  if limit > 0 then last = limit - 1 end
  local ids = redis.call('ZRANGE', P .. ARGV[2], 0, last)
  local out = {}
  for i, id in ipairs(ids) do out[i] = full_record(rkey(id), id, '') end
  return out
end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', P .. ARGV[2], 0, -1)) do
  if limit >= 0 and #out >= limit then break end
  local k = rkey(id)
  local found = redis.call('HMGET', k, 'status', 'workflow')
  if (status == '' or found[1] == status) and (workflow == '' or found[2] == workflow) then
    out[#out + 1] = full_record(k, id, '')
  end
end
return out
"""
)

INPUTS = (
    _COMMON
    + """
-- ARGV: prefix, index key suffix. The rows of the index, in its (asked_at, member) order.
local members = redis.call('ZRANGE', P .. ARGV[2], 0, -1)
local out = {}
for start = 1, #members, 1000 do
  local last = math.min(start + 999, #members)
  local rows = redis.call('HMGET', P .. ':input', unpack(members, start, last))
  for _, row in ipairs(rows) do out[#out + 1] = row end
end
return out
"""
)

GET = (
    _COMMON
    + """
-- ARGV: prefix, id, the version whose pieces the caller has ('' for none)
local k = rkey(ARGV[2])
if redis.call('EXISTS', k) == 0 then return {'missing'} end
return {'ok', full_record(k, ARGV[2], ARGV[3])}
"""
)

PRUNE = _COMMON + PRUNE_LUA

FILL_ENDED = (
    _COMMON
    + """
-- ARGV: prefix, status (ended), offset, count. Files a page of the ids of that status in
-- P:ended (raising a layout 2 database to 3); how many ids the page held.
local status, offset = ARGV[2], tonumber(ARGV[3])
local ids = redis.call('ZRANGE', by_status(status), offset, offset + tonumber(ARGV[4]) - 1)
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', rkey(id), 'status', 'workflow', 'updated_at')
  if f[1] == status then file_ended(id, status, f[2], f[3]) end
end
return #ids
"""
)

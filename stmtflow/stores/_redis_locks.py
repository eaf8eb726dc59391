"""The Redis store's lock index (`stmtflow.stores._locks`), kept by the script that writes the
instance whose claims changed.

A `Batch`'s ``locks`` travel as arguments of `_redis_lua.UPDATE` (and ``UPDATE_FREE``), so the
instance's rows are replaced, and the keys whose rows changed are granted, in the one atomic
step that checks and writes its record: a refused write changes no row, and no other client
sees the rows between the write and the grants. Keys, with ``P`` the prefix and ``K`` a lock
key:

=======================  ==================================================================
``P:lock:seq``           counter: the arrival order of every row (``LockRow.seq``)
``P:lockq:K``            sorted set: the waiting rows of ``K``, scored by arrival
``P:lockh:K``            set: the rows of ``K`` that hold a slot
``P:lockl:K``            hash: row -> its lock's ``limit`` (waiting and holding rows)
``P:locks:<id>``         hash: (thread, lock name) -> ``K``, the rows of instance ``id``
=======================  ==================================================================

A row is named by the JSON array ``[id, thread, name]``. Granting follows `grants`: while the
key holds fewer rows than the first waiter's limit, the first waiter is moved from the queue
to the holders and a `grant_message` is posted to its inbox (making its instance due) by the
same script. Holders always came first, so a grant reads only the waiters it grants and the
one that stops it. An ended instance holds no rows (its last write released them), so prune
has nothing of it to remove here.
"""

from __future__ import annotations

from collections.abc import Sequence

from stmtflow.stores._locks import LOCK_EVENT, LockClaim

__all__ = ["LOCKS_LUA", "lock_args"]

LOCKS_LUA = (
    """
local function lock_drop(id, field, key)
  local mark = cjson.decode(field)
  local row = cjson.encode({id, mark[1], mark[2]})
  redis.call('ZREM', P .. ':lockq:' .. key, row)
  redis.call('SREM', P .. ':lockh:' .. key, row)
  redis.call('HDEL', P .. ':lockl:' .. key, row)
  redis.call('HDEL', P .. ':locks:' .. id, field)
end

-- Serve `key`'s waiters in arrival order while a slot is free; post each one its grant.
local function lock_grant(key)
  local queue, held = P .. ':lockq:' .. key, P .. ':lockh:' .. key
  local holding = redis.call('SCARD', held)
  while true do
    local first = redis.call('ZRANGE', queue, 0, 0)[1]
    if not first then return end
    local limit = tonumber(redis.call('HGET', P .. ':lockl:' .. key, first))
    if holding >= limit then return end
    redis.call('ZREM', queue, first)
    redis.call('SADD', held, first)
    holding = holding + 1
    local row = cjson.decode(first)
    local message = cjson.encode({'event', row[3] .. '"""
    + LOCK_EVENT
    + """', row[2], 0,
      cjson.encode(key), cjson.null, false})
    post_message(row[1], '', message)
  end
end

-- ARGV[a ..]: '' (the rows stay), or n, then n claims of (thread, name, key ('' for a held
-- claim: its row keeps its key), limit, again ('1' or '0')): replace instance `id`'s rows
-- with them and grant the keys that changed. Returns the index of the argument after them.
local function apply_locks(id, a)
  if ARGV[a] == '' then return a + 1 end
  local own = P .. ':locks:' .. id
  local found = {}
  local old = redis.call('HGETALL', own)
  for j = 1, #old, 2 do found[old[j]] = old[j + 1] end
  local keys, wanted, new = {}, {}, {}
  local i = a + 1
  for _ = 1, tonumber(ARGV[a]) do
    local field = cjson.encode({ARGV[i], ARGV[i + 1]})
    local key, again = ARGV[i + 2], ARGV[i + 4] == '1'
    if not again then wanted[field] = true end
    if key ~= '' and (again or not found[field]) then
      new[#new + 1] = {field, ARGV[i], ARGV[i + 1], key, ARGV[i + 3]}
    end
    i = i + 5
  end
  for field, key in pairs(found) do
    if not wanted[field] then
      lock_drop(id, field, key)
      keys[key] = true
    end
  end
  for _, claim in ipairs(new) do
    local field, key = claim[1], claim[4]
    local row = cjson.encode({id, claim[2], claim[3]})
    local seq = redis.call('INCR', P .. ':lock:seq')
    redis.call('ZADD', P .. ':lockq:' .. key, seq, row)
    redis.call('HSET', P .. ':lockl:' .. key, row, claim[5])
    redis.call('HSET', own, field, key)
    keys[key] = true
  end
  local sorted = {}
  for key in pairs(keys) do sorted[#sorted + 1] = key end
  table.sort(sorted)
  for _, key in ipairs(sorted) do lock_grant(key) end
  return i
end
"""
)
"""Lua functions for the scripts that write records (after `_redis_inbox.INBOX_LUA`, whose
``post_message`` they use)."""


def lock_args(claims: Sequence[LockClaim] | None) -> list[str]:
    """The `apply_locks` arguments of a batch's ``locks`` (``[""]``: None, the rows stay)."""
    if claims is None:
        return [""]
    args = [str(len(claims))]
    for claim in claims:
        key = "" if claim.key is None else claim.key
        args += [claim.thread_id, claim.name, key, str(claim.limit), "1" if claim.again else "0"]
    return args

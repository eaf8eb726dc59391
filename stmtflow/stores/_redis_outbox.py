"""The Redis store's outbox: `OutboxMessage` rows written by the script that writes the step's
checkpoint, and claimed, deleted and retried by scripts of their own.

A `Batch`'s ``emit`` rows travel as arguments of the script that writes the instance
(`_redis_lua.UPDATE`, ``UPDATE_FREE``), so they exist exactly when the checkpoint does: a
refused write stores none. Keys, with ``P`` the prefix:

=========================  ==============================================================
``P:outbox:seq``           counter: the order of emission (``OutboxMessage.seq``)
``P:outbox:msg:<seq>``     hash: one message's fields (``last_error`` and
                           ``next_attempt_at`` absent while None)
``P:outbox:keys``          hash: key -> seq of every message stored, so a key written again
                           (a step re-run after a crash) is left as it is
``P:outbox``               sorted set: every seq, scored by seq (`Store.outbox`)
``P:outbox:of:<id>``       sorted set: the seqs instance ``id`` emitted, scored by seq
``P:outbox:new``           sorted set: the seqs never claimed (due at once), scored by seq
``P:outbox:due``           sorted set: the seqs claimed or put back, by ``next_attempt_at``
=========================  ==============================================================

A claim takes the oldest never-claimed messages and the earliest due of the others, up to its
limit, and hands them over in emission order. Rows outlive their instance until delivered (a
pruned instance leaves them): a message committed is a message sent.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from stmtflow.stores._outbox import OutboxMessage
from stmtflow.stores._redis_codec import fields, micros, opt, time_from
from stmtflow.stores.base import aware

__all__ = [
    "OUTBOX_CLAIM",
    "OUTBOX_LIST",
    "OUTBOX_LUA",
    "OUTBOX_RETRY",
    "OUTBOX_SENT",
    "RedisOutbox",
    "emit_args",
]

OUTBOX_LUA = """
-- ARGV[a ..]: n, then (when n > 0) created_at and n rows of (key, topic, payload, instance_id,
-- thread_id, step). A row whose key is stored already is left as it is. Returns the index of
-- the argument after them.
local function write_emit(a)
  local n = tonumber(ARGV[a])
  if n == 0 then return a + 1 end
  local at, i = ARGV[a + 1], a + 2
  for _ = 1, n do
    local key, owner = ARGV[i], ARGV[i + 3]
    if redis.call('HEXISTS', P .. ':outbox:keys', key) == 0 then
      local seq = redis.call('INCR', P .. ':outbox:seq')
      redis.call('HSET', P .. ':outbox:msg:' .. seq, 'key', key, 'topic', ARGV[i + 1],
        'payload', ARGV[i + 2], 'instance_id', owner, 'thread_id', ARGV[i + 4],
        'step', ARGV[i + 5], 'created_at', at, 'attempts', '0')
      redis.call('HSET', P .. ':outbox:keys', key, seq)
      redis.call('ZADD', P .. ':outbox', seq, seq)
      redis.call('ZADD', P .. ':outbox:new', seq, seq)
      redis.call('ZADD', P .. ':outbox:of:' .. owner, seq, seq)
    end
    i = i + 6
  end
  return i
end
"""
"""The Lua function the writing scripts apply a batch's outbox rows with."""

_HEAD = """
local P = ARGV[1]
local function mkey(seq) return P .. ':outbox:msg:' .. seq end
"""

OUTBOX_CLAIM = (
    _HEAD
    + """
-- ARGV: prefix, now, claimed until, limit (> 0). The oldest never-claimed seqs and the
-- earliest due others, the first `limit` of them by seq: each due again when the claim lapses.
local now, until_at, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local picked = redis.call('ZRANGE', P .. ':outbox:new', 0, limit - 1)
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', P .. ':outbox:due', '-inf', now,
    'LIMIT', 0, limit)) do
  picked[#picked + 1] = seq
end
table.sort(picked, function(x, y) return tonumber(x) < tonumber(y) end)
local out = {}
for j = 1, math.min(limit, #picked) do
  local seq = picked[j]
  out[j] = {seq, redis.call('HGETALL', mkey(seq))}
  redis.call('ZREM', P .. ':outbox:new', seq)
  redis.call('ZADD', P .. ':outbox:due', until_at, seq)
  redis.call('HSET', mkey(seq), 'next_attempt_at', until_at)
end
return out
"""
)

OUTBOX_SENT = (
    _HEAD
    + """
-- ARGV: prefix, seqs. Delete the messages (and free their keys).
for i = 2, #ARGV do
  local seq = ARGV[i]
  local found = redis.call('HMGET', mkey(seq), 'key', 'instance_id')
  if found[1] then
    if redis.call('HGET', P .. ':outbox:keys', found[1]) == seq then
      redis.call('HDEL', P .. ':outbox:keys', found[1])
    end
    for _, key in ipairs({':outbox', ':outbox:new', ':outbox:due', ':outbox:of:' .. found[2]}) do
      redis.call('ZREM', P .. key, seq)
    end
    redis.call('DEL', mkey(seq))
  end
end
return 0
"""
)

OUTBOX_RETRY = (
    _HEAD
    + """
-- ARGV: prefix, retry_at, error (opt: a failed delivery counted), seqs. Due again at retry_at.
local at, err = ARGV[2], ARGV[3]
for i = 4, #ARGV do
  local seq = ARGV[i]
  if redis.call('EXISTS', mkey(seq)) == 1 then
    redis.call('ZREM', P .. ':outbox:new', seq)
    redis.call('ZADD', P .. ':outbox:due', at, seq)
    redis.call('HSET', mkey(seq), 'next_attempt_at', at)
    if err ~= '' then
      redis.call('HINCRBY', mkey(seq), 'attempts', 1)
      redis.call('HSET', mkey(seq), 'last_error', string.sub(err, 2))
    end
  end
end
return 0
"""
)

OUTBOX_LIST = (
    _HEAD
    + """
-- ARGV: prefix, index key suffix (':outbox' or ':outbox:of:<id>'). Its messages by seq.
local out = {}
for _, seq in ipairs(redis.call('ZRANGE', P .. ARGV[2], 0, -1)) do
  out[#out + 1] = {seq, redis.call('HGETALL', mkey(seq))}
end
return out
"""
)


def emit_args(messages: Sequence[OutboxMessage], now: datetime) -> list[str]:
    """The `write_emit` arguments of a batch's outbox rows, committed at ``now``."""
    if not messages:
        return ["0"]
    args = [str(len(messages)), micros(now)]
    for m in messages:
        args += [m.key, m.topic, m.payload, m.instance_id, m.thread_id, m.step]
    return args


def _message(item: Sequence[Any]) -> OutboxMessage:
    f = fields(item[1])
    return OutboxMessage(
        key=f["key"],
        topic=f["topic"],
        payload=f["payload"],
        instance_id=f["instance_id"],
        thread_id=f["thread_id"],
        step=f["step"],
        seq=int(item[0]),
        created_at=time_from(f["created_at"]),
        attempts=int(f["attempts"]),
        last_error=f.get("last_error"),
        next_attempt_at=time_from(f.get("next_attempt_at")),
    )


class RedisOutbox:
    """The outbox methods of `stmtflow.stores.redis.RedisStore` (one script each)."""

    def _run(self, name: str, *args: str | int) -> Any:
        raise NotImplementedError  # the store's own: runs a script with the key prefix

    def outbox_claim(
        self, now: datetime, lease: timedelta, limit: int = 100
    ) -> builtins.list[OutboxMessage]:
        """Claim up to ``limit`` due messages until ``now + lease``, in emission order."""
        now = aware(now, "now")
        if limit <= 0:
            return []
        rows = self._run("OUTBOX_CLAIM", micros(now), micros(now + lease), limit)
        return [_message(item) for item in rows]

    def outbox_sent(self, seqs: Sequence[int]) -> None:
        if seqs:
            self._run("OUTBOX_SENT", *map(str, seqs))

    def outbox_retry(
        self, seqs: Sequence[int], retry_at: datetime, error: str | None = None
    ) -> None:
        if seqs:
            at = micros(aware(retry_at, "retry_at"))
            self._run("OUTBOX_RETRY", at, opt(error), *map(str, seqs))

    def outbox(self, instance_id: str | None = None) -> builtins.list[OutboxMessage]:
        index = ":outbox" if instance_id is None else f":outbox:of:{instance_id}"
        return [_message(item) for item in self._run("OUTBOX_LIST", index)]

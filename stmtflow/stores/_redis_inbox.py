"""The Redis store's inboxes: messages kept beside the records, written by the same scripts.

A `Batch` travels as arguments of the script that writes its instance (`_redis_lua.UPDATE`,
``UPDATE_FREE``), so the children it creates, the messages it posts and the instance's own
messages it takes or keeps are applied in the one atomic step that checks and writes the
record: a refused write applies none of it. Keys, with ``P`` the prefix:

=====================  ==================================================================
``P:seq``              counter: the arrival order of every message (``Message.seq``)
``P:inbox:<id>``       sorted set: the seqs of the messages not yet taken, scored by seq
``P:msg:<id>``         hash: seq -> the message (`encode`)
``P:fresh:<id>``       set: the seqs still ``new`` (the rest of the inbox is ``kept``)
``P:keys:<id>``        hash: key -> seq of every key the instance held or took (``0``: an
                       event delivered directly), kept for good, so a key is delivered once
``P:posted``           sorted set: the ids holding a ``new`` message, scored by the seq that
                       made them so; `Store.claim_due` reads it after the wake-up indexes
``P:children:<id>``    sorted set: the children of ``id``, scored by created_at
=====================  ==================================================================

A taken message is removed (its key stays in ``P:keys:<id>``). Every key is named by the
script: no ``KEYS`` or ``SCAN``.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Sequence
from typing import Any

from stmtflow.errors import NotFound
from stmtflow.stores._batch import Batch, Message
from stmtflow.stores.base import Record

__all__ = [
    "INBOX",
    "INBOX_LUA",
    "KNOWN_KEY",
    "POST",
    "RedisInboxes",
    "batch_args",
    "decode",
    "encode",
]

INBOX_LUA = """
local function fresh_left(id)
  if redis.call('SCARD', P .. ':fresh:' .. id) == 0 then redis.call('ZREM', P .. ':posted', id) end
end

-- Put a message in `to`'s inbox: 0 for a missing instance or a key it knows already.
local function post_message(to, key, text)
  if redis.call('EXISTS', rkey(to)) == 0 then return 0 end
  if key ~= '' and redis.call('HEXISTS', P .. ':keys:' .. to, string.sub(key, 2)) == 1 then
    return 0
  end
  local seq = redis.call('INCR', P .. ':seq')
  redis.call('ZADD', P .. ':inbox:' .. to, seq, seq)
  redis.call('HSET', P .. ':msg:' .. to, seq, text)
  redis.call('SADD', P .. ':fresh:' .. to, seq)
  if key ~= '' then redis.call('HSET', P .. ':keys:' .. to, string.sub(key, 2), seq) end
  redis.call('ZADD', P .. ':posted', 'NX', seq, to)
  return 1
end

local function take_message(id, seq)
  redis.call('ZREM', P .. ':inbox:' .. id, seq)
  redis.call('HDEL', P .. ':msg:' .. id, seq)
  redis.call('SREM', P .. ':fresh:' .. id, seq)
end

-- ARGV[a ..]: '' (nothing for inboxes), or: n children, each as (count, create_record's count
-- arguments); n posts of (to, key (opt), message); n seqs taken; n seqs kept; n keys delivered
-- directly. Returns the index of the argument after them.
local function apply_batch(id, a)
  if ARGV[a] == '' then return a + 1 end
  local i = a + 1
  for _ = 1, tonumber(ARGV[a]) do
    create_record(i + 1)
    i = i + 1 + tonumber(ARGV[i])
  end
  local n = tonumber(ARGV[i])
  for _ = 1, n do
    post_message(ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 3
  end
  i = i + 1
  n = tonumber(ARGV[i])
  for j = 1, n do take_message(id, ARGV[i + j]) end
  i = i + n + 1
  n = tonumber(ARGV[i])
  for j = 1, n do redis.call('SREM', P .. ':fresh:' .. id, ARGV[i + j]) end
  i = i + n + 1
  n = tonumber(ARGV[i])
  for j = 1, n do
    local key = ARGV[i + j]
    local seq = redis.call('HGET', P .. ':keys:' .. id, key)
    if not seq then
      redis.call('HSET', P .. ':keys:' .. id, key, '0')
    elseif seq ~= '0' then
      take_message(id, seq)
    end
  end
  fresh_left(id)
  return i + n + 1
end
"""
"""Lua functions for the scripts that write records (appended to their common part)."""

_HEAD = """
local P = ARGV[1]
local function rkey(id) return P .. ':rec:' .. id end
"""

POST = (
    _HEAD
    + INBOX_LUA.split("local function take_message")[0]
    + """
-- ARGV: prefix, to, key (opt), message
if redis.call('EXISTS', rkey(ARGV[2])) == 0 then return {'missing'} end
return {'ok', post_message(ARGV[2], ARGV[3], ARGV[4])}
"""
)

INBOX = (
    _HEAD
    + """
-- ARGV: prefix, id. The messages not yet taken, in arrival order: seq, message, new (1/0).
local id = ARGV[2]
local out = {}
for _, seq in ipairs(redis.call('ZRANGE', P .. ':inbox:' .. id, 0, -1)) do
  out[#out + 1] = seq
  out[#out + 1] = redis.call('HGET', P .. ':msg:' .. id, seq)
  out[#out + 1] = redis.call('SISMEMBER', P .. ':fresh:' .. id, seq)
end
return out
"""
)

KNOWN_KEY = (
    _HEAD
    + """
-- ARGV: prefix, id, key
return redis.call('HEXISTS', P .. ':keys:' .. ARGV[2], ARGV[3])
"""
)


def encode(message: Message) -> str:
    """A message as its ``P:msg:<id>`` value (everything but its instance, status and seq)."""
    return json.dumps(
        [
            message.kind,
            message.event,
            message.thread_id,
            message.pc,
            message.input,
            message.key,
            message.buffered,
        ],
        ensure_ascii=False,
    )


def decode(to: str, seq: str, text: str, fresh: int) -> Message:
    """The `Message` of one stored value (`encode`)."""
    kind, event, thread_id, pc, input, key, buffered = json.loads(text)
    return Message(
        to=to,
        kind=kind,
        event=event,
        thread_id=thread_id,
        pc=pc,
        input=input,
        key=key,
        buffered=buffered,
        status="new" if fresh else "kept",
        seq=int(seq),
    )


def batch_args(batch: Batch, create_args: Callable[[Record], Sequence[str]]) -> list[str]:
    """The script arguments of ``batch``'s children and messages (``[""]`` for none; its outbox
    rows and history travel apart: `_redis_outbox`, `_redis_history`); ``create_args`` gives
    each child's `create_record` arguments."""
    if not (batch.create or batch.post or batch.take or batch.keep or batch.keys):
        return [""]
    args = [str(len(batch.create))]
    for child in batch.create:
        block = list(create_args(child))
        args += [str(len(block)), *block]
    args.append(str(len(batch.post)))
    for message in batch.post:
        key = "" if message.key is None else "=" + message.key
        args += [message.to, key, encode(message)]
    for seqs in (batch.take, batch.keep):
        args += [str(len(seqs)), *map(str, seqs)]
    args += [str(len(batch.keys)), *batch.keys]
    return args


class RedisInboxes:
    """The inbox methods of `stmtflow.stores.redis.RedisStore` (one script each)."""

    def _run(self, name: str, *args: str | int) -> Any:
        raise NotImplementedError  # the store's own: runs a script with the key prefix

    def post(self, message: Message) -> bool:
        """Put ``message`` in its inbox (`Store.post`); False when its key is known."""
        key = "" if message.key is None else "=" + message.key
        answer = self._run("POST", message.to, key, encode(message))
        if answer[0] == "missing":
            raise NotFound(f"no workflow instance with id {message.to!r}")
        return bool(answer[1])

    def inbox(self, id: str) -> builtins.list[Message]:
        """The messages of ``id`` not yet taken, in arrival order."""
        flat = self._run("INBOX", id)
        return [decode(id, flat[i], flat[i + 1], int(flat[i + 2])) for i in range(0, len(flat), 3)]

    def known_key(self, id: str, key: str) -> bool:
        """Whether ``id`` holds or took a message with ``key``."""
        return bool(self._run("KNOWN_KEY", id, key))

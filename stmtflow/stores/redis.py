"""The Redis store: records in hashes, indexes in sorted sets, every write one Lua script.

Install with ``pip install 'stmtflow[redis]'`` (redis-py). Many workers on many machines may
share one Redis server. Each check-and-write (compare-and-set on the version, the fence, a
live lease) is a Lua script, which Redis runs to the end before any other command: there is no
window between the check and the write, and no ``WATCH`` retry loop.

URL: ``redis://[user:password@]host:6379/0?prefix=name`` (``rediss://`` for TLS). ``prefix``
(default ``stmtflow``) starts every key, so several deployments or test runs share one
database; it is removed before connecting, other parameters (``socket_timeout``...) go to
redis-py. Keys, with ``P`` the prefix:

=====================================  ==========================================================
``P:meta``                             hash: ``schema_version``
``P:rec:<id>``                         hash: one record's fields (a None field is absent)
``P:created``                          sorted set of every id, scored by created_at
``P:status:<status>``                  the ids with that status, scored by created_at
``P:workflow:<type>``                  the ids of that workflow type, scored by created_at
``P:status:<status>:workflow:<type>``  both filters at once, scored by created_at
``P:due``                              the ids with a wake-up, scored by wake_at
``P:resuming``                         the ``resuming`` ids without a wake-up, by created_at
``P:resuming-at``                      the ``resuming`` ids with a wake-up, by wake_at
``P:parts:<id>``                       hash: a large state's thread pieces (`_redis_parts`)
``P:targets``                          hash: workflow type -> target
``P:inbox:<id>`` and the rest           inboxes and the children index (`_redis_inbox`)
``P:history:<id>``, ``P:ended`` ...     histories and the ended index for prune (`_redis_history`)
``P:outbox`` and the rest               the outbox (`_redis_outbox`)
``P:sched:<name>`` and the rest         schedules and their due index (`_redis_schedules`)
=====================================  ==========================================================

Times are integers of microseconds since the Unix epoch (`_redis_codec`). Ids with equal
scores sort by their bytes, which for UTF-8 is code point order: listing is by (created_at, id)
like the other stores. No operation reads keys it does not name: no ``KEYS`` or ``SCAN``. The
scripts build their key names from the prefix, so the store needs one Redis server (or a
primary with replicas), not a Cluster.

Example:
    >>> store = RedisStore("redis://127.0.0.1:6379/0?prefix=demo")  # doctest: +SKIP
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Redis store needs redis-py: pip install 'stmtflow[redis]'") from exc

from stmtflow.errors import ConflictError, NotFound, StmtflowError
from stmtflow.stores import _redis_lua as lua
from stmtflow.stores._batch import NO_BATCH, Batch
from stmtflow.stores._inputs import PendingInput, schema_reader
from stmtflow.stores._redis_codec import fields, micros, opt, opt_time, record_from, time_from
from stmtflow.stores._redis_history import RedisHistory, history_args
from stmtflow.stores._redis_inbox import RedisInboxes, batch_args
from stmtflow.stores._redis_inputs import decode, encode_args, index_key
from stmtflow.stores._redis_locks import lock_args
from stmtflow.stores._redis_outbox import RedisOutbox, emit_args
from stmtflow.stores._redis_parts import Cache, Parts, assemble, plan
from stmtflow.stores._redis_schedules import RedisSchedules
from stmtflow.stores.base import (
    Record,
    Store,
    aware,
    check_claim_args,
    claim_order,
    free_lease,
    lease_conflict,
    redact,
    refusal,
    status_value,
    utcnow,
    with_changes,
)

__all__ = ["DEFAULT_PREFIX", "SCHEMA_VERSION", "RedisStore"]

SCHEMA_VERSION = 3
"""The key layout this release writes and reads (kept in ``P:meta``). Version 2 added the
parent fields of a record, inboxes and the children index (`_redis_inbox`): keys a layout 1
database lacks until they are first written, so opening one only raises the number. Version 3
added histories, the outbox (new keys too) and ``P:ended``, the ended instances prune reads:
opening an older database files its ended instances there first (`_fill_ended`)."""

_ENDED = ("finished", "failed", "cancelled")
_FILL_PAGE = 500

DEFAULT_PREFIX = "stmtflow"
"""The key prefix when the URL names none."""


def _split_url(url: str) -> tuple[str, str, set[str]]:
    """The redis-py URL without the ``prefix`` parameter, the prefix, and the other parameters.

    Raises:
        ValueError: no host, a database that is not a number, or an empty or repeated prefix.
    """
    shown = redact(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses the port: a bad one is a ValueError here
    except ValueError as exc:
        raise ValueError(f"malformed Redis URL {shown!r}: {exc}") from None
    if not parts.hostname:
        raise ValueError(f"a Redis URL needs a host: redis://host:6379/0, got {shown!r}")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError(f"Redis URL {shown!r}: the database must be a number (/0), got {db!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [v for k, v in query if k == "prefix"]
    if len(prefixes) > 1 or (prefixes and not prefixes[0]):
        raise ValueError(f"Redis URL {shown!r}: give one non-empty prefix= parameter")
    rest = [(k, v) for k, v in query if k != "prefix"]
    prefix = prefixes[0] if prefixes else DEFAULT_PREFIX
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix, {k for k, _ in rest}


class RedisStore(RedisInboxes, RedisOutbox, RedisHistory, RedisSchedules, Store):
    """A `Store` in a Redis database, shared by any number of workers.

    Args:
        url: ``redis://...`` or ``rediss://...``, optionally with ``?prefix=name``.
        socket_timeout: seconds a command may wait for the server (unless the URL sets it).

    Raises:
        ValueError: a malformed URL.
        StmtflowError: the server cannot be reached, or holds a newer key layout.

    Example:
        >>> with RedisStore("redis://127.0.0.1:6379/0") as s:  # doctest: +SKIP
        ...     s.list(status="waiting")
        []
    """

    def __init__(self, url: str, *, socket_timeout: float = 10.0) -> None:
        self.url = redact(url)
        client_url, self.prefix, given = _split_url(url)
        # One more try on a fresh connection when a connection broke (a pooled one the server
        # dropped, or a restarted server): see "Redis" in docs/stores.md for what a re-sent
        # write that had landed comes back as.
        options: dict[str, Any] = {
            "decode_responses": True,
            "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        }
        for name in ("socket_timeout", "socket_connect_timeout"):
            if name not in given:
                options[name] = socket_timeout
        try:
            self._redis: redis.Redis = redis.Redis.from_url(client_url, **options)
        except ValueError as exc:
            raise ValueError(f"malformed Redis URL {self.url!r}: {exc}") from None
        self._parts = Cache()
        self._scripts = {
            name: self._redis.register_script(getattr(lua, name))
            for name in lua.__all__  # registered here, loaded on first use
        }
        try:
            self._setup()
        except redis.RedisError as exc:
            self._redis.close()
            raise StmtflowError(f"cannot use Redis at {self.url}: {exc}") from exc

    def _setup(self) -> None:
        meta = f"{self.prefix}:meta"
        self._redis.hsetnx(meta, "schema_version", str(SCHEMA_VERSION))
        found = int(self._redis.hget(meta, "schema_version") or SCHEMA_VERSION)
        if found > SCHEMA_VERSION:
            raise StmtflowError(
                f"the Redis store {self.url} (prefix {self.prefix!r}) has key layout version "
                f"{found}, newer than this release of stmtflow supports ({SCHEMA_VERSION}); "
                "upgrade stmtflow"
            )
        if found < SCHEMA_VERSION:
            if found < 3:
                self._fill_ended()
            self._redis.hset(meta, "schema_version", str(SCHEMA_VERSION))

    def _fill_ended(self) -> None:
        """File a layout 2 database's ended instances in ``P:ended``, a page per script (a
        write meanwhile files its own instance as it goes: filing twice is harmless)."""
        for status in _ENDED:
            offset = 0
            while True:
                got = int(self._run("FILL_ENDED", status, offset, _FILL_PAGE))
                offset += got
                if got < _FILL_PAGE:
                    break

    def close(self) -> None:
        self._redis.close()

    def _run(self, name: str, *args: str | int) -> Any:
        return self._scripts[name](keys=[], args=[self.prefix, *args])

    @staticmethod
    def _missing(id: str) -> NotFound:
        return NotFound(f"no workflow instance with id {id!r}")

    def _read(self, item: Sequence[Any], known: Parts | None = None) -> Record:
        """A record as a script returns it: ``[fields]``, or ``[fields, pieces]`` for a state
        kept in parts (``pieces`` empty: the server has ``known``'s version of them)."""
        record = record_from(item[0])
        if len(item) == 1:
            return record
        if item[1]:
            text, known = assemble(record.state, fields(item[1]), record.version)
            self._parts.put(record.id, known)
        else:
            assert known is not None and known.version == record.version
            text = "".join([record.state, *known.texts, known.tail])
        return with_changes(record, state=text)

    # -- records ----------------------------------------------------------------------------

    def create(self, record: Record, *, inputs: Sequence[PendingInput] | None = None) -> Record:
        now = utcnow()
        args, parts = self._create_args(record, now, encode_args(record.id, inputs or ()))
        answer = self._run("CREATE", *args)
        if answer[0] == "exists":
            raise ConflictError(f"a workflow instance with id {record.id!r} already exists")
        self._parts.put(record.id, parts)
        return with_changes(record_from(answer[1][0]), state=record.state)

    @staticmethod
    def _create_args(
        record: Record, now: datetime, rows: builtins.list[str]
    ) -> tuple[builtins.list[str], Parts | None]:
        """The arguments of the scripts' ``create_record`` for ``record``, and its parts."""
        head, pieces, parts = plan(record.state, None, 1)
        args = [
            record.id,
            record.workflow,
            record.data,
            head,
            record.status,
            opt_time(record.wake_at),
            opt(record.lease_owner),
            opt_time(record.lease_expires),
            opt(record.error),
            micros(record.created_at or now),
            micros(now),
            opt(record.parent_id),
            record.root_id or record.id,
            opt(record.parent_event),
            opt(record.on_parent_end),
            *pieces,
            *rows,
        ]
        return args, parts

    def _batch(self, batch: Batch, now: datetime) -> builtins.list[str]:
        """The arguments of ``batch``: children and messages, outbox rows, history, locks."""
        args = batch_args(batch, lambda child: self._create_args(child, now, ["0"])[0])
        history = history_args(batch.history)
        return [*args, *emit_args(batch.emit, now), *history, *lock_args(batch.locks)]

    def get(self, id: str) -> Record:
        known = self._parts.latest(id)
        answer = self._run("GET", id, "" if known is None else known.version)
        if answer[0] == "missing":
            raise self._missing(id)
        return self._read(answer[1], known)

    def list(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int | None = None,
        *,
        parent_id: str | None = None,
    ) -> builtins.list[Record]:
        if limit is not None and limit <= 0:
            return []
        wanted = "" if status is None else status_value(status)
        if parent_id is not None:  # every child of one parent: filtered by the script
            index, filters = f":children:{parent_id}", [wanted, workflow or ""]
        else:
            index, filters = ":created", ["", ""]
            if status is not None:
                index = f":status:{wanted}"
            if workflow is not None:
                index = f"{index if status is not None else ''}:workflow:{workflow}"
        rows = self._run("LIST", index, -1 if limit is None else limit, *filters)
        return [self._read(item) for item in rows]

    def update(
        self,
        record: Record,
        *,
        expected_version: int,
        fence: int | None = None,
        release: bool = False,
        batch: Batch = NO_BATCH,
        inputs: Sequence[PendingInput] | None = None,
    ) -> Record:
        now = utcnow()
        rows = encode_args(record.id, inputs)
        old = self._parts.get(record.id, expected_version)
        head, pieces, parts = plan(record.state, old, expected_version + 1)
        answer = self._run(
            "UPDATE",
            record.id,
            expected_version,
            "" if fence is None else f"={fence}",
            "1" if release else "0",
            *self._data_args(record, head, now),
            *pieces,
            *rows,
            *self._batch(batch, now),
        )
        if answer[0] != "ok":
            raise self._refused(record.id, answer, expected_version, fence)
        self._parts.put(record.id, parts)
        return self._written(record, answer[1], expected_version, now)

    def update_free(
        self,
        record: Record,
        *,
        expected_version: int,
        now: datetime,
        owner: str | None = None,
        lease: timedelta | None = None,
        batch: Batch = NO_BATCH,
        inputs: Sequence[PendingInput] | None = None,
    ) -> Record:
        now, expires = free_lease(now, owner, lease)
        rows = encode_args(record.id, inputs)
        updated_at = utcnow()
        old = self._parts.get(record.id, expected_version)
        head, pieces, parts = plan(record.state, old, expected_version + 1)
        answer = self._run(
            "UPDATE_FREE",
            record.id,
            expected_version,
            micros(now),
            opt(owner),
            opt_time(expires),
            *self._data_args(record, head, updated_at),
            *pieces,
            *rows,
            *self._batch(batch, updated_at),
        )
        if answer[0] != "ok":
            raise self._refused(record.id, answer, expected_version, None, now)
        self._parts.put(record.id, parts)
        return self._written(record, answer[1], expected_version, updated_at)

    @staticmethod
    def _data_args(record: Record, state: str, now: datetime) -> builtins.list[str]:
        return [
            record.data,
            state,
            record.status,
            opt_time(record.wake_at),
            opt(record.error),
            micros(now),
        ]

    def _refused(
        self,
        id: str,
        answer: Sequence[Any],
        expected_version: int,
        fence: int | None,
        now: datetime | None = None,
    ) -> StmtflowError:
        if answer[0] == "missing":
            return self._missing(id)
        return refusal(self._read(answer[1]), expected_version, fence, now)

    @staticmethod
    def _written(
        record: Record, kept: Sequence[str | None], expected_version: int, now: datetime
    ) -> Record:
        """The stored record: ``record``'s data fields, the fields the write left alone."""
        workflow, created_at, fence, owner, expires = kept
        assert workflow is not None and created_at is not None and fence is not None
        return with_changes(
            record,
            workflow=workflow,
            created_at=time_from(created_at),
            fence=int(fence),
            lease_owner=owner,
            lease_expires=time_from(expires),
            version=expected_version + 1,
            updated_at=now,
        )

    # -- leases -----------------------------------------------------------------------------

    def claim_due(
        self, now: datetime, owner: str, lease: timedelta, limit: int = 10
    ) -> builtins.list[Record]:
        now = aware(now, "now")
        check_claim_args(owner, lease, limit)
        rows = self._run("CLAIM_DUE", micros(now), owner, micros(now + lease), limit)
        return claim_order([self._read(item) for item in rows])

    def claim(self, id: str, owner: str, lease: timedelta, now: datetime | None = None) -> Record:
        now = utcnow() if now is None else aware(now, "now")
        check_claim_args(owner, lease)
        answer = self._run("CLAIM", id, owner, micros(now), micros(now + lease))
        if answer[0] == "missing":
            raise self._missing(id)
        if answer[0] == "refused":
            raise lease_conflict(self._read(answer[1]), owner)
        return self._read(answer[1])

    def renew(
        self,
        id: str,
        owner: str,
        fence: int,
        lease: timedelta,
        now: datetime | None = None,
    ) -> Record:
        now = utcnow() if now is None else aware(now, "now")
        check_claim_args(owner, lease)
        answer = self._run("RENEW", id, owner, fence, micros(now + lease))
        if answer[0] == "missing":
            raise self._missing(id)
        if answer[0] == "refused":
            current = self._read(answer[1])
            raise refusal(current, current.version, fence)
        return self._read(answer[1])

    def release(self, id: str, owner: str, fence: int) -> bool:
        answer = self._run("RELEASE", id, owner, fence)
        if answer[0] == "missing":
            raise self._missing(id)
        return bool(answer[1])

    # -- targets ----------------------------------------------------------------------------

    def set_target(self, workflow: str, target: str) -> None:
        self._redis.hset(f"{self.prefix}:targets", workflow, target)

    def get_target(self, workflow: str) -> str | None:
        found = self._redis.hget(f"{self.prefix}:targets", workflow)
        return None if found is None else str(found)

    def inputs(
        self, *, assignee: str | None = None, workflow: str | None = None
    ) -> builtins.list[PendingInput]:
        load = schema_reader()
        rows = [decode(text, load) for text in self._run("INPUTS", index_key(assignee, workflow))]
        if assignee is not None and workflow is not None:
            rows = [row for row in rows if row.workflow == workflow]
        return rows

    def targets(self) -> dict[str, str]:
        found = self._redis.hgetall(f"{self.prefix}:targets")
        return {str(w): str(t) for w, t in sorted(found.items())}

    def count_due(self, now: datetime) -> int:
        return int(self._redis.zcount(f"{self.prefix}:due", "-inf", micros(aware(now, "now"))))

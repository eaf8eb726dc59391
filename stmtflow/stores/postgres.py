"""The shared store: PostgreSQL through psycopg 3 and a connection pool.

Install with ``pip install 'stmtflow[postgres]'``. Many workers on many machines may share one
database: due work is claimed with one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
LOCKED) RETURNING`` statement, so concurrent claimers skip each other's rows instead of waiting,
and every claim increments the record's fencing token.

``data`` and ``state`` are ``text``, not ``jsonb``: the store never looks inside them, text keeps
the interpreter's JSON byte for byte (jsonb reorders keys and normalises numbers), and nothing is
parsed and re-serialised on every checkpoint. Times are ``timestamptz``, returned in UTC.

URL: ``postgresql://user:password@host:5432/db?schema=name`` (``postgres://`` too). The
``schema`` parameter is removed before connecting; the schema is created if missing and every
pooled connection's ``search_path`` is set to it, so several deployments (or test runs) can
share one database. Other parameters (``sslmode``, ``connect_timeout``...) go to libpq.

Example:
    >>> store = PostgresStore("postgresql://postgres@127.0.0.1/test?schema=demo")  # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import contextlib
import json
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from time import monotonic
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the PostgreSQL store needs psycopg 3 and psycopg_pool: pip install 'stmtflow[postgres]'"
    ) from exc

from stmtflow.errors import ConflictError, NotFound, StmtflowError
from stmtflow.stores import _postgres_history as _history
from stmtflow.stores import _postgres_outbox as outbox
from stmtflow.stores._history import HistoryEvent, Snapshot
from stmtflow.stores._inputs import (
    INPUT_COLUMNS,
    PendingInput,
    check_inputs,
    from_row,
    input_params,
    input_query,
    schema_reader,
)
from stmtflow.stores._locks import apply_locks
from stmtflow.stores._outbox import OutboxMessage
from stmtflow.stores._postgres_inbox import apply_messages, known_key, pending, post
from stmtflow.stores._postgres_schedules import PostgresSchedules
from stmtflow.stores._postgres_schema import SCHEMA_VERSION, set_up
from stmtflow.stores._sql import list_query, update_free_query, update_params, update_query, written
from stmtflow.stores.base import (
    NO_BATCH,
    Batch,
    Message,
    Record,
    Store,
    aware,
    check_claim_args,
    claim_order,
    free_lease,
    lease_conflict,
    redact,
    refusal,
    utcnow,
    with_changes,
)

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

_IDLE_CHECK = 1.0
"""Seconds after its last checkout a pooled connection is pinged when next taken."""

_INSERT_INPUT = f"INSERT INTO stmtflow_inputs ({INPUT_COLUMNS}) VALUES ({', '.join(['%s'] * 9)})"

_COLUMNS = (
    "id, workflow, data, state, status, version, wake_at, lease_owner, lease_expires, fence, "
    "error, created_at, updated_at, parent_id, root_id, parent_event, on_parent_end"
)
_INBOX = (
    "EXISTS (SELECT 1 FROM stmtflow_inbox AS m WHERE m.instance_id = stmtflow_instances.id "
    "AND m.status <> 'done')"
)
_READ = f"{_COLUMNS}, {_INBOX}"
"""What a read selects: a record's columns, and whether its inbox holds messages not yet taken."""


def _same(value: datetime | None) -> datetime | None:
    return value  # psycopg adapts datetimes itself


_MARK = lambda name: f"%({name})s"  # noqa: E731 - a one-line spelling rule

_CLAIM_DUE = f"""
WITH due AS (
    SELECT id FROM stmtflow_instances
    WHERE ((wake_at IS NOT NULL AND wake_at <= %(now)s) OR status = 'resuming')
      AND (lease_expires IS NULL OR lease_expires < %(now)s)
    ORDER BY wake_at NULLS FIRST, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), posted AS (
    SELECT i.id FROM stmtflow_instances AS i
    WHERE i.id IN (SELECT instance_id FROM stmtflow_inbox WHERE status = 'new')
      AND (i.lease_expires IS NULL OR i.lease_expires < %(now)s)
    ORDER BY i.id
    LIMIT %(limit)s
    FOR UPDATE OF i SKIP LOCKED
)
UPDATE stmtflow_instances
SET lease_owner = %(owner)s, lease_expires = %(expires)s, fence = fence + 1
WHERE id IN (
    SELECT id FROM (
        SELECT id, 0 AS rank FROM due
        UNION
        SELECT id, 1 AS rank FROM posted
    ) AS found
    ORDER BY rank, id
    LIMIT %(limit)s
)
RETURNING {_READ}
"""
"""Claims the due instances (a wake-up passed, or left resuming) and those due because something
was posted to them, as two probes: in one ``WHERE``, an ``OR`` with the inbox probe keeps
PostgreSQL from using the two partial indexes and it scans the whole table (11 ms at 100 000
instances against 0.1). Rows a probe locked and the ``LIMIT`` left out are unlocked when the
statement ends."""


def _insert_inputs(
    conn: psycopg.Connection[tuple[Any, ...]], rows: tuple[PendingInput, ...]
) -> None:
    """Insert pending-input rows (inside the caller's transaction)."""
    if rows:
        with conn.cursor() as cursor:
            cursor.executemany(_INSERT_INPUT, [input_params(r, json.dumps, _same) for r in rows])


def _split_schema(url: str) -> tuple[str, str | None]:
    """The libpq URL without the ``schema`` parameter, and that parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    if len(schemas) > 1 or (schemas and not schemas[0]):
        raise ValueError(f"store URL {redact(url)!r}: give one non-empty schema= parameter")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), (schemas[0] if schemas else None)


def _dt(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo is UTC else value.astimezone(UTC)


def _record(row: tuple[Any, ...]) -> Record:
    """The record of a row read with `_COLUMNS` (or `_READ`: then with its inbox flag)."""
    id_, workflow, data, state, status, version, wake_at, owner, expires, fence = row[:10]
    error, c, u, parent_id, root_id, parent_event, on_parent_end = row[10:17]
    return Record(
        id=id_,
        workflow=workflow,
        data=data,
        state=state,
        status=status,
        version=version,
        wake_at=_dt(wake_at),
        lease_owner=owner,
        lease_expires=_dt(expires),
        fence=fence,
        error=error,
        created_at=_dt(c),
        updated_at=_dt(u),
        parent_id=parent_id,
        root_id=root_id or id_,
        parent_event=parent_event,
        on_parent_end=on_parent_end,
        inbox=bool(row[17]) if len(row) > 17 else False,
    )


class PostgresStore(PostgresSchedules, Store):
    """A `Store` in a PostgreSQL database, shared by any number of workers.

    Args:
        url: ``postgresql://...`` or ``postgres://...``, optionally with ``?schema=name``.
        min_size: connections the pool keeps open.
        max_size: most connections the pool opens (one per concurrently working thread).
        connect_timeout: seconds to wait for the server before giving up.

    Raises:
        StmtflowError: the server cannot be reached, or its schema is newer than this release.

    Example:
        >>> with PostgresStore("postgresql://postgres@127.0.0.1/test") as s:  # doctest: +SKIP
        ...     s.list(status="waiting")
        []
    """

    def __init__(
        self, url: str, *, min_size: int = 1, max_size: int = 10, connect_timeout: int = 10
    ) -> None:
        self.url = redact(url)
        libpq_url, self.schema = _split_schema(url)
        try:
            params = conninfo_to_dict(libpq_url)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"malformed PostgreSQL URL {self.url!r}: {exc}") from None
        params.setdefault("connect_timeout", connect_timeout)
        conninfo = make_conninfo("", **params)
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                self._setup(conn)
        except psycopg.OperationalError as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StmtflowError(f"cannot use PostgreSQL at {self.url}: {message}") from exc
        self._last_used: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            check=self._check,
            name="stmtflow",
            open=True,
        )

    def _search_path(self) -> sql.Composed:
        assert self.schema is not None
        return sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))

    def _check(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Ping a connection taken from the pool if it was last taken a while ago.

        One taken moments ago just worked: pinging it on every checkout would make every
        statement two round trips. One that idled may have been dropped by the server or the
        network; a broken one fails the ping and the pool hands out another. A connection that
        breaks in the second after its last use fails its next statement instead, as any
        connection may mid-statement.

        The time is noted at checkout, not on return: a pool with a ``reset`` callback hands
        every returned connection to its worker thread, which costs each statement a thread
        switch (some 40 µs of CPU, and the connection is away meanwhile). A connection held
        longer than `_IDLE_CHECK` is thus pinged once more than needed: one round trip.
        """
        now = monotonic()
        last = self._last_used.get(conn, float("-inf"))
        self._last_used[conn] = now
        if now - last >= _IDLE_CHECK:
            ConnectionPool.check_connection(conn)

    def _configure(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        conn.execute("SET TIME ZONE 'UTC'")
        if self.schema is not None:
            conn.execute(self._search_path())
        self._last_used[conn] = monotonic()  # it just answered

    def _setup(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        set_up(conn, self.schema, self.url)

    def close(self) -> None:
        self._pool.close()

    def _one(self, query: str, params: Any) -> tuple[Any, ...] | None:
        with self._pool.connection() as conn:
            return conn.execute(query, params).fetchone()

    def _fetch(
        self, conn: psycopg.Connection[tuple[Any, ...]], id: str, lock: bool = False
    ) -> Record:
        suffix = " FOR UPDATE" if lock else ""
        query = f"SELECT {_READ} FROM stmtflow_instances WHERE id = %s{suffix}"
        row = conn.execute(query, (id,)).fetchone()
        if row is None:
            raise NotFound(f"no workflow instance with id {id!r}")
        return _record(row)

    # -- records ----------------------------------------------------------------------------

    def create(self, record: Record, *, inputs: Sequence[PendingInput] | None = None) -> Record:
        rows = check_inputs(record.id, inputs or ())
        with self._pool.connection() as conn:
            if not rows:
                row = _create(conn, record, utcnow())
            else:
                with conn.transaction():
                    row = _create(conn, record, utcnow())
                    if row is not None:
                        _insert_inputs(conn, rows)
        if row is None:
            raise ConflictError(f"a workflow instance with id {record.id!r} already exists")
        return _record(row)

    def get(self, id: str) -> Record:
        with self._pool.connection() as conn:
            return self._fetch(conn, id)

    def list(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int | None = None,
        *,
        parent_id: str | None = None,
    ) -> builtins.list[Record]:
        query, params = list_query(_READ, status, workflow, limit, _MARK, parent_id)
        with self._pool.connection() as conn:
            return [_record(row) for row in conn.execute(query, params).fetchall()]

    # -- histories --------------------------------------------------------------------------

    def history(self, id: str) -> tuple[builtins.list[HistoryEvent], int]:
        with self._pool.connection() as conn:
            return _history.events(conn, id)

    def snapshot(self, id: str, seq: int) -> Snapshot | None:
        with self._pool.connection() as conn:
            return _history.snapshot(conn, id, seq)

    def prune(
        self,
        ended_before: datetime,
        *,
        workflow: str | None = None,
        limit: int = 100,
        now: datetime,
    ) -> builtins.list[str]:
        with self._pool.connection() as conn, conn.transaction():
            return _history.prune(conn, ended_before, now, workflow, limit)

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
        query = update_query(fenced=fence is not None, release=release, mark=_MARK)
        params = update_params(record, expected_version, fence, now, _same)
        kept = self._write_data(record.id, query, params, batch, inputs, now)
        if kept is None:
            with self._pool.connection() as conn:
                raise refusal(self._fetch(conn, record.id), expected_version, fence)
        return written(record, kept, expected_version, now, _dt)

    def _write_data(
        self,
        id: str,
        query: str,
        params: dict[str, Any],
        batch: Batch,
        inputs: Sequence[PendingInput] | None,
        now: datetime,
    ) -> dict[str, Any] | None:
        """Run a compare-and-set data write: the columns it returned, or None if refused (and
        nothing else was written).

        The batch's history and outbox rows go in the write's own statement (`_folded`): a
        step's write with its history is one statement in autocommit, one round trip. The rest
        of a batch (children, messages) and ``inputs`` are sent after the write's answer: one
        transaction in pipeline mode, two round trips (begin and the write; the rest and
        commit) however many statements it holds.
        """
        rows = None if inputs is None else check_inputs(id, inputs)
        query, params, rest = _folded(query, params, batch, now)
        with self._pool.connection() as conn:
            if rows is None and rest.empty:
                return conn.cursor(row_factory=dict_row).execute(query, params).fetchone()
            try:
                # BEGIN and COMMIT by hand: ``conn.transaction()`` waits for the server at
                # both ends, even in pipeline mode (four round trips instead of two).
                with conn.pipeline():
                    conn.execute("BEGIN")
                    kept = conn.cursor(row_factory=dict_row).execute(query, params).fetchone()
                    if kept is not None:
                        if rows is not None:
                            conn.execute(
                                "DELETE FROM stmtflow_inputs WHERE instance_id = %s", (id,)
                            )
                            _insert_inputs(conn, rows)
                        _apply(conn, id, rest, now)
                    conn.execute("COMMIT")
            except BaseException:
                # A failed statement left the transaction open, aborted. On a broken
                # connection the rollback fails too: the original error is the one to raise,
                # and the pool discards the connection (or rolls back one left in a
                # transaction) when it comes back.
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
                raise
            return kept

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
        updated_at = utcnow()
        query = update_free_query(claim=owner is not None, mark=_MARK)
        params = update_params(record, expected_version, None, updated_at, _same)
        params.update(now=now, owner=owner, expires=expires)
        kept = self._write_data(record.id, query, params, batch, inputs, updated_at)
        if kept is None:
            with self._pool.connection() as conn:
                raise refusal(self._fetch(conn, record.id), expected_version, None, now)
        return written(record, kept, expected_version, updated_at, _dt)

    # -- leases -----------------------------------------------------------------------------

    def claim_due(
        self, now: datetime, owner: str, lease: timedelta, limit: int = 10
    ) -> builtins.list[Record]:
        now = aware(now, "now")
        check_claim_args(owner, lease, limit)
        params = {"owner": owner, "expires": now + lease, "now": now, "limit": limit}
        with self._pool.connection() as conn:
            rows = conn.execute(_CLAIM_DUE, params).fetchall()
        return claim_order([_record(row) for row in rows])

    def claim(self, id: str, owner: str, lease: timedelta, now: datetime | None = None) -> Record:
        now = utcnow() if now is None else aware(now, "now")
        check_claim_args(owner, lease)
        with self._pool.connection() as conn, conn.transaction():
            current = self._fetch(conn, id, lock=True)
            if current.lease_owner not in (None, owner) and current.lease_live(now):
                raise lease_conflict(current, owner)
            cursor = conn.execute(
                "UPDATE stmtflow_instances SET lease_owner = %s, lease_expires = %s, "
                "fence = fence + 1 WHERE id = %s",
                (owner, now + lease, id),
            )
        assert cursor.rowcount == 1  # the row is locked: it cannot have vanished
        return with_changes(
            current, lease_owner=owner, lease_expires=now + lease, fence=current.fence + 1
        )

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
        with self._pool.connection() as conn:
            row = conn.execute(
                "UPDATE stmtflow_instances SET lease_expires = %s "
                f"WHERE id = %s AND lease_owner = %s AND fence = %s RETURNING {_READ}",
                (now + lease, id, owner, fence),
            ).fetchone()
            if row is None:
                current = self._fetch(conn, id)
                raise refusal(current, current.version, fence)
        return _record(row)

    def release(self, id: str, owner: str, fence: int) -> bool:
        with self._pool.connection() as conn:
            cur = conn.execute(
                "UPDATE stmtflow_instances SET lease_owner = NULL, lease_expires = NULL "
                "WHERE id = %s AND lease_owner = %s AND fence = %s",
                (id, owner, fence),
            )
            if cur.rowcount == 0:
                self._fetch(conn, id)  # NotFound when missing
                return False
        return True

    # -- outbox -----------------------------------------------------------------------------

    def outbox_claim(
        self, now: datetime, lease: timedelta, limit: int = 100
    ) -> builtins.list[OutboxMessage]:
        with self._pool.connection() as conn:
            return outbox.claim(conn, aware(now, "now"), lease, limit)

    def outbox_sent(self, seqs: Sequence[int]) -> None:
        with self._pool.connection() as conn:
            outbox.sent(conn, seqs)

    def outbox_retry(
        self, seqs: Sequence[int], retry_at: datetime, error: str | None = None
    ) -> None:
        with self._pool.connection() as conn:
            outbox.retry(conn, seqs, aware(retry_at, "retry_at"), error)

    def outbox(self, instance_id: str | None = None) -> builtins.list[OutboxMessage]:
        with self._pool.connection() as conn:
            return outbox.listing(conn, instance_id)

    # -- inboxes ----------------------------------------------------------------------------

    def post(self, message: Message) -> bool:
        with self._pool.connection() as conn:
            self._fetch(conn, message.to)  # NotFound when missing
            return post(conn, message, utcnow())

    def inbox(self, id: str) -> builtins.list[Message]:
        with self._pool.connection() as conn:
            return pending(conn, id)

    def known_key(self, id: str, key: str) -> bool:
        with self._pool.connection() as conn:
            return known_key(conn, id, key)

    # -- pending inputs ---------------------------------------------------------------------

    def inputs(
        self, *, assignee: str | None = None, workflow: str | None = None
    ) -> builtins.list[PendingInput]:
        query, params = input_query(assignee, workflow, _MARK)
        with self._pool.connection() as conn:
            rows = conn.execute(query, params).fetchall()
        read = schema_reader()
        return [from_row(row, read, _dt) for row in rows]

    # -- targets ----------------------------------------------------------------------------

    def set_target(self, workflow: str, target: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO stmtflow_targets (workflow, target) VALUES (%s, %s) "
                "ON CONFLICT (workflow) DO UPDATE SET target = EXCLUDED.target",
                (workflow, target),
            )

    def get_target(self, workflow: str) -> str | None:
        row = self._one("SELECT target FROM stmtflow_targets WHERE workflow = %s", (workflow,))
        return None if row is None else str(row[0])

    def targets(self) -> dict[str, str]:
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT workflow, target FROM stmtflow_targets ORDER BY workflow")
            return {str(w): str(t) for w, t in rows.fetchall()}

    def count_due(self, now: datetime) -> int:
        row = self._one(
            "SELECT count(*) FROM stmtflow_instances WHERE wake_at IS NOT NULL AND wake_at <= %s",
            (aware(now, "now"),),
        )
        return int(row[0]) if row else 0


def _create_query(record: Record, now: datetime) -> tuple[str, tuple[Any, ...]]:
    """The statement inserting ``record`` (version 1), doing nothing when its id exists."""
    return (
        f"INSERT INTO stmtflow_instances ({_COLUMNS}) "
        "VALUES (%s, %s, %s, %s, %s, 1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        f"ON CONFLICT (id) DO NOTHING RETURNING {_COLUMNS}",
        (
            record.id,
            record.workflow,
            record.data,
            record.state,
            record.status,
            record.wake_at,
            record.lease_owner,
            record.lease_expires,
            1 if record.lease_owner is not None else 0,
            record.error,
            record.created_at or now,
            now,
            record.parent_id,
            record.root_id or record.id,
            record.parent_event,
            record.on_parent_end,
        ),
    )


def _create(conn: psycopg.Connection[Any], record: Record, now: datetime) -> Any:
    """Insert ``record`` (version 1); None when its id exists (nothing changed)."""
    return conn.execute(*_create_query(record, now)).fetchone()


def _folded(
    query: str, params: dict[str, Any], batch: Batch, now: datetime
) -> tuple[str, dict[str, Any], Batch]:
    """The write ``query`` with the batch's history and outbox rows in its statement (``WITH
    w AS (write) ...``: inserted only if the write returned its row), its parameters, and the
    rest of the batch."""
    items: builtins.list[str] = []
    params = dict(params)
    if batch.history is not None:
        query = _history.counted(query)
        item, extra = _history.folded(batch.history)
        items.append(item)
        params.update(extra)
    if batch.emit:
        item, extra = outbox.folded(batch.emit, now)
        items.append(item)
        params.update(extra)
    if not items:
        return query, params, batch
    folded = f"WITH w AS ({query}),{','.join(items)}\nSELECT * FROM w"
    return folded, params, replace(batch, history=None, emit=())


def _apply(conn: psycopg.Connection[Any], id: str, batch: Batch, now: datetime) -> None:
    """Apply ``batch`` for a write of instance ``id``, in the write's transaction (in pipeline
    mode: nothing here waits for an answer but the lock index's reads, in a write that changes
    lock claims)."""
    for child in batch.create:
        conn.execute(*_create_query(child, now))
    apply_messages(conn, id, batch, now)
    if batch.locks is not None:
        execute = _executor(conn)
        serialise = partial(_serialise, conn)
        for message in apply_locks(execute, id, batch.locks, _MARK, serialise=serialise):
            post(conn, message, now)


def _executor(conn: psycopg.Connection[Any]) -> Callable[[str, dict[str, Any]], list[Any]]:
    """Runs one statement of the lock index in ``conn``'s transaction (`apply_locks`)."""

    def execute(sql: str, params: dict[str, Any]) -> list[Any]:
        cur = conn.execute(sql, params)  # in pipeline mode: only a SELECT waits for its rows
        return list(cur.fetchall()) if sql.startswith("SELECT") else []

    return execute


def _serialise(conn: psycopg.Connection[Any], keys: list[str]) -> None:
    """Take the transaction's advisory lock of each key, in sorted order (no deadlock): the
    grants of one key are made by one transaction at a time, which sees the last one's rows."""
    for key in keys:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

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

Beside the data writes kept here, the store's parts are mixins, one module each: the pool's
hooks and the URL's schema (`stmtflow.stores._postgres_connections`), leases
(`_postgres_leases`), reads (`_postgres_queries`), outbox and inbox calls (`_postgres_messages`)
and schedules (`_postgres_schedules`); how rows are spelled is `stmtflow.stores._postgres_rows`'.

Example:
    >>> store = PostgresStore("postgresql://postgres@127.0.0.1/test?schema=demo")  # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import contextlib
import json
import weakref
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

try:
    import psycopg
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
from stmtflow.stores._inputs import INPUT_COLUMNS, PendingInput, check_inputs, input_params
from stmtflow.stores._postgres_connections import PostgresConnections, _split_schema
from stmtflow.stores._postgres_inbox import apply_messages
from stmtflow.stores._postgres_leases import PostgresLeases
from stmtflow.stores._postgres_locks import REPLACE, SERIALISE, lock_params
from stmtflow.stores._postgres_messages import PostgresMessages
from stmtflow.stores._postgres_queries import PostgresQueries
from stmtflow.stores._postgres_rows import _COLUMNS, _MARK, _READ, _dt, _record, _same
from stmtflow.stores._postgres_schedules import PostgresSchedules
from stmtflow.stores._postgres_schema import SCHEMA_VERSION
from stmtflow.stores._sql import update_free_query, update_params, update_query, written
from stmtflow.stores.base import NO_BATCH, Batch, Record, Store, free_lease, redact, refusal, utcnow

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

_INSERT_INPUT = f"INSERT INTO stmtflow_inputs ({INPUT_COLUMNS}) VALUES ({', '.join(['%s'] * 9)})"


def _insert_inputs(
    conn: psycopg.Connection[tuple[Any, ...]], rows: tuple[PendingInput, ...]
) -> None:
    """Insert pending-input rows (inside the caller's transaction)."""
    if rows:
        with conn.cursor() as cursor:
            cursor.executemany(_INSERT_INPUT, [input_params(r, json.dumps, _same) for r in rows])


class PostgresStore(
    PostgresConnections, PostgresLeases, PostgresQueries, PostgresMessages, PostgresSchedules, Store
):
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
        of a batch (children, messages, lock claims) and ``inputs`` are sent after the write's
        answer: one transaction in pipeline mode, two round trips (begin and the write; the
        rest and commit) however many statements it holds.
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
    mode: nothing here waits for an answer; the lock index's two statements decide on the
    server, `stmtflow.stores._postgres_locks`)."""
    for child in batch.create:
        conn.execute(*_create_query(child, now))
    apply_messages(conn, id, batch, now)
    if batch.locks is not None:
        params = lock_params(id, batch.locks, now)
        conn.execute(SERIALISE, params)
        conn.execute(REPLACE, params)

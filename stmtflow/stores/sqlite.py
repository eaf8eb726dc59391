"""The embedded default store: one SQLite file, no server (stdlib `sqlite3`).

Durability and sharing:

- WAL journal, ``synchronous=FULL``: every committed write is fsynced before it returns.
- One connection per thread (and per process: a forked child opens its own), so readers do not
  wait for writers; several processes may share the file. Writers wait up to ``busy_timeout``.
- Single-row writes are one ``UPDATE ... WHERE version = ?`` statement (compare-and-set);
  `SQLiteStore.claim_due` runs in a ``BEGIN IMMEDIATE`` transaction, which takes the file's
  write lock first, so two claimers can never pick the same record.

Datetimes are stored as fixed-width ISO-8601 text in UTC with microseconds
(``2025-01-02T03:04:05.000000+00:00``), so text comparison in SQL is time comparison and the
file stays readable with the ``sqlite3`` shell.

``sqlite:///:memory:`` gives a private in-memory database on one connection behind a lock.

Example:
    >>> from stmtflow.stores.base import Record
    >>> with SQLiteStore(":memory:") as store:
    ...     store.create(Record(id="a", workflow="Order", data="{}", state="{}")).version
    1
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from stmtflow.errors import ConflictError, NotFound, StmtflowError
from stmtflow.stores.base import (
    Record,
    Store,
    aware,
    check_claim_args,
    claim_order,
    free_lease,
    lease_conflict,
    refusal,
    utcnow,
    with_changes,
)
from stmtflow.stores.sql import (
    kept_params,
    list_query,
    update_free_query,
    update_params,
    update_query,
    written,
    written_as_sent,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

SCHEMA_VERSION = 1
"""The schema this release creates and reads (kept in ``stmtflow_meta``)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS stmtflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stmtflow_instances (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    data TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    wake_at TEXT,
    lease_owner TEXT,
    lease_expires TEXT,
    fence INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stmtflow_instances_due
    ON stmtflow_instances (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS stmtflow_instances_resuming
    ON stmtflow_instances (created_at) WHERE status = 'resuming';
CREATE INDEX IF NOT EXISTS stmtflow_instances_status
    ON stmtflow_instances (status, created_at, id);
CREATE INDEX IF NOT EXISTS stmtflow_instances_created ON stmtflow_instances (created_at, id);
CREATE TABLE IF NOT EXISTS stmtflow_targets (workflow TEXT PRIMARY KEY, target TEXT NOT NULL);
"""

_COLUMNS = (
    "id, workflow, data, state, status, version, wake_at, lease_owner, lease_expires, fence, "
    "error, created_at, updated_at"
)

_MARK = lambda name: f":{name}"  # noqa: E731 - a one-line spelling rule
_LEASE_FREE = "(lease_expires IS NULL OR lease_expires < :now)"
_SAME = "IS"  # SQLite's null-safe equality, for the writes that need no RETURNING


def _ts(value: datetime | None) -> str | None:
    """A datetime as fixed-width UTC ISO text (see the module docstring)."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is not UTC:  # records hold UTC already
        value = aware(value, "datetime")
    return value.isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _only(cursor: sqlite3.Cursor) -> tuple[Any, ...] | None:
    """The one row a write's ``RETURNING`` gave, read to the end so the write commits (and any
    commit error is raised) here rather than whenever the cursor is collected."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


def _exact(conn: sqlite3.Connection, sql: str, params: dict[str, Any], record: Record) -> bool:
    """Run a write built with ``same`` (see `stmtflow.stores.sql`): True when it changed the
    row, i.e. the caller's copy of the record was exact and the write is done. A record that did
    not come from the store (no ``created_at``) cannot be exact and is not tried."""
    if record.created_at is None:
        return False
    return conn.execute(sql, params | kept_params(record, _ts)).rowcount == 1


def _record(row: tuple[Any, ...]) -> Record:
    (id_, workflow, data, state, status, version, wake_at, owner, expires, fence, error, c, u) = row
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
    )


class _ThreadConnection:
    """A thread's own connection (and the process that opened it: a forked child opens anew)."""

    __slots__ = ("__weakref__", "conn", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.pid = conn, os.getpid()


class SQLiteStore(Store):
    """A `Store` in one SQLite file (or ``":memory:"``).

    Args:
        path: the database file (created with its directory's permissions if missing).
        busy_timeout: how long a writer waits for another writer's lock before failing.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "flows.db")
        >>> with SQLiteStore(path) as store:
        ...     store.set_target("Order", "shop/flows.py:Order")
        >>> SQLiteStore(path).get_target("Order")
        'shop/flows.py:Order'
    """

    def __init__(self, path: str, *, busy_timeout: timedelta = timedelta(seconds=30)) -> None:
        if not path:
            raise ValueError("an SQLite store needs a file path (or ':memory:')")
        self.path = path
        self._timeout = busy_timeout.total_seconds()
        self._memory = path == ":memory:"
        self._local = threading.local()
        self._lock = threading.RLock()
        self._all: list[sqlite3.Connection] = []
        self._closed = False
        self._shared = self._open() if self._memory else None
        with self._conn() as conn:
            self._setup(conn)

    # -- connections ------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        if not self._memory:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        with self._lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StmtflowError(f"the SQLite store {self.path!r} is closed")
        if self._shared is not None:
            with self._lock:
                yield self._shared
            return
        mine: _ThreadConnection | None = getattr(self._local, "mine", None)
        if mine is None or mine.pid != os.getpid():
            mine = _ThreadConnection(self._open())
            # When the thread ends its locals are dropped: close its connection then.
            weakref.finalize(mine, self._forget, mine.conn)
            self._local.mine = mine
        yield mine.conn

    def _forget(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
                conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: the write lock is taken before anything is read."""
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute(
                "SELECT value FROM stmtflow_meta WHERE key = 'schema_version'"
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO stmtflow_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise StmtflowError(
                    f"the SQLite store {self.path!r} has schema version {row[0]}, newer than this "
                    f"release of stmtflow supports ({SCHEMA_VERSION}); upgrade stmtflow"
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()

    # -- records ----------------------------------------------------------------------------

    def _fetch(self, conn: sqlite3.Connection, id: str) -> Record:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM stmtflow_instances WHERE id = ?", (id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no workflow instance with id {id!r}")
        return _record(row)

    def create(self, record: Record) -> Record:
        now = _ts(utcnow())
        with self._conn() as conn:
            cursor = conn.execute(
                f"INSERT INTO stmtflow_instances ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?) "
                f"ON CONFLICT (id) DO NOTHING RETURNING {_COLUMNS}",
                (
                    record.id,
                    record.workflow,
                    record.data,
                    record.state,
                    record.status,
                    _ts(record.wake_at),
                    record.lease_owner,
                    _ts(record.lease_expires),
                    1 if record.lease_owner is not None else 0,
                    record.error,
                    _ts(record.created_at) or now,
                    now,
                ),
            )
            row = _only(cursor)
        if row is None:
            raise ConflictError(f"a workflow instance with id {record.id!r} already exists")
        return _record(row)

    def get(self, id: str) -> Record:
        with self._conn() as conn:
            return self._fetch(conn, id)

    def list(
        self, status: str | None = None, workflow: str | None = None, limit: int | None = None
    ) -> builtins.list[Record]:
        sql, params = list_query(_COLUMNS, status, workflow, limit, _MARK)
        with self._conn() as conn:
            return [_record(row) for row in conn.execute(sql, params)]

    def update(
        self,
        record: Record,
        *,
        expected_version: int,
        fence: int | None = None,
        release: bool = False,
    ) -> Record:
        now = utcnow()
        fenced = fence is not None
        params = update_params(record, expected_version, fence, _ts(now), _ts)
        with self._conn() as conn:
            if _exact(
                conn,
                update_query(fenced=fenced, release=release, mark=_MARK, same=_SAME),
                params,
                record,
            ):
                lease = {"lease_owner": None, "lease_expires": None} if release else {}
                return written_as_sent(record, expected_version, now, **lease)
            sql = update_query(fenced=fenced, release=release, mark=_MARK)
            kept = _only(conn.execute(sql, params))
            if kept is None:
                raise refusal(self._fetch(conn, record.id), expected_version, fence)
        return written(record, kept, expected_version, now, _dt)

    def update_free(
        self,
        record: Record,
        *,
        expected_version: int,
        now: datetime,
        owner: str | None = None,
        lease: timedelta | None = None,
    ) -> Record:
        now, expires = free_lease(now, owner, lease)
        updated_at = utcnow()
        claim = owner is not None
        params = update_params(record, expected_version, None, _ts(updated_at), _ts)
        params.update(now=_ts(now), owner=owner, expires=_ts(expires))
        with self._conn() as conn:
            exact = update_free_query(claim=claim, mark=_MARK, same=_SAME)
            if _exact(conn, exact, params, record):
                fence = record.fence + 1 if claim else record.fence
                return written_as_sent(
                    record,
                    expected_version,
                    updated_at,
                    lease_owner=owner,
                    lease_expires=expires,
                    fence=fence,
                )
            sql = update_free_query(claim=claim, mark=_MARK)
            kept = _only(conn.execute(sql, params))
            if kept is None:
                raise refusal(self._fetch(conn, record.id), expected_version, None, now)
        return written(record, kept, expected_version, updated_at, _dt)

    # -- leases -----------------------------------------------------------------------------

    def claim_due(
        self, now: datetime, owner: str, lease: timedelta, limit: int = 10
    ) -> builtins.list[Record]:
        now = aware(now, "now")
        check_claim_args(owner, lease, limit)
        params = {"now": _ts(now), "limit": limit}
        # Two index-backed probes (the partial indexes on wake_at and on status='resuming'), so
        # the cost follows the due records, not the table; the write lock makes them atomic.
        due_sql = (
            f"SELECT {_COLUMNS} FROM stmtflow_instances "
            f"WHERE wake_at IS NOT NULL AND wake_at <= :now AND {_LEASE_FREE} "
            "ORDER BY wake_at LIMIT :limit"
        )
        resuming_sql = (
            f"SELECT {_COLUMNS} FROM stmtflow_instances "
            f"WHERE status = 'resuming' AND {_LEASE_FREE} ORDER BY created_at LIMIT :limit"
        )
        with self._write() as conn:
            found = {
                r.id: r
                for sql in (due_sql, resuming_sql)
                for r in map(_record, conn.execute(sql, params))
            }
            chosen = claim_order(list(found.values()))[:limit]
            return [self._take(conn, r, owner, now + lease) for r in chosen]

    def _take(
        self, conn: sqlite3.Connection, current: Record, owner: str, expires: datetime
    ) -> Record:
        """Lease ``current``, read under the write lock (so it is what the row holds)."""
        fence = current.fence + 1
        cursor = conn.execute(
            "UPDATE stmtflow_instances SET lease_owner = ?, lease_expires = ?, fence = fence + 1 "
            "WHERE id = ?",
            (owner, _ts(expires), current.id),
        )
        assert cursor.rowcount == 1  # under the write lock the row cannot have vanished
        return with_changes(current, lease_owner=owner, lease_expires=expires, fence=fence)

    def claim(self, id: str, owner: str, lease: timedelta, now: datetime | None = None) -> Record:
        now = utcnow() if now is None else aware(now, "now")
        check_claim_args(owner, lease)
        with self._write() as conn:
            current = self._fetch(conn, id)
            if current.lease_owner not in (None, owner) and current.lease_live(now):
                raise lease_conflict(current, owner)
            return self._take(conn, current, owner, now + lease)

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
        with self._conn() as conn:
            row = _only(
                conn.execute(
                    "UPDATE stmtflow_instances SET lease_expires = ? "
                    f"WHERE id = ? AND lease_owner = ? AND fence = ? RETURNING {_COLUMNS}",
                    (_ts(now + lease), id, owner, fence),
                )
            )
            if row is None:
                current = self._fetch(conn, id)
                raise refusal(current, current.version, fence)
        return _record(row)

    def release(self, id: str, owner: str, fence: int) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "UPDATE stmtflow_instances SET lease_owner = NULL, lease_expires = NULL "
                "WHERE id = ? AND lease_owner = ? AND fence = ?",
                (id, owner, fence),
            )
            if cur.rowcount == 0:
                self._fetch(conn, id)  # NotFound when missing
                return False
        return True

    # -- targets ----------------------------------------------------------------------------

    def set_target(self, workflow: str, target: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO stmtflow_targets (workflow, target) VALUES (?, ?) "
                "ON CONFLICT (workflow) DO UPDATE SET target = excluded.target",
                (workflow, target),
            )

    def get_target(self, workflow: str) -> str | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT target FROM stmtflow_targets WHERE workflow = ?", (workflow,)
            ).fetchone()
        return None if row is None else str(row[0])

    def targets(self) -> dict[str, str]:
        with self._conn() as conn:
            rows = conn.execute("SELECT workflow, target FROM stmtflow_targets ORDER BY workflow")
            return {str(w): str(t) for w, t in rows}

    def count_due(self, now: datetime) -> int:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT count(*) FROM stmtflow_instances "
                "WHERE wake_at IS NOT NULL AND wake_at <= ?",
                (_ts(aware(now, "now")),),
            ).fetchone()
        return int(row[0])

"""The embedded default store: one SQLite file, no server (stdlib `sqlite3`).

Durability and sharing:

- WAL journal, ``synchronous=FULL``: every committed write is fsynced before it returns.
- One connection per thread (and per process: a forked child opens its own), so readers do not
  wait for writers; several processes may share the file. Writers wait up to ``busy_timeout``.
- A state of 16 KB or more is kept in parts, one row per thread, and a write rewrites only the
  parts that changed, in one transaction with its row (`stmtflow.stores._sqlite_parts`).
- Other single-row writes are one ``UPDATE ... WHERE version = ?`` statement (compare-and-set);
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
from typing import Any, NamedTuple

from stmtflow.errors import ConflictError, NotFound, StmtflowError
from stmtflow.stores._sql import (
    kept_params,
    list_query,
    update_free_query,
    update_params,
    update_query,
    written,
    written_as_sent,
)
from stmtflow.stores._sqlite_parts import PartsCache, Stored, row_count, split, whole
from stmtflow.stores._sqlite_parts import read as read_parts
from stmtflow.stores._sqlite_parts import write as write_parts
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

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

SCHEMA_VERSION = 2
"""The schema this release creates and reads (kept in ``stmtflow_meta``). Version 1 had no
state parts (`stmtflow.stores._sqlite_parts`); opening such a file adds them."""

_META = "CREATE TABLE IF NOT EXISTS stmtflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

_SCHEMA = (
    """
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
    updated_at TEXT NOT NULL,
    state_parts INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE INDEX IF NOT EXISTS stmtflow_instances_due
    ON stmtflow_instances (wake_at) WHERE wake_at IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS stmtflow_instances_resuming
    ON stmtflow_instances (created_at) WHERE status = 'resuming'""",
    """CREATE INDEX IF NOT EXISTS stmtflow_instances_status
    ON stmtflow_instances (status, created_at, id)""",
    "CREATE INDEX IF NOT EXISTS stmtflow_instances_created ON stmtflow_instances (created_at, id)",
    "CREATE TABLE IF NOT EXISTS stmtflow_targets (workflow TEXT PRIMARY KEY, target TEXT NOT NULL)",
)

_PARTS_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS stmtflow_state_parts (
    id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (id, pos)
) WITHOUT ROWID""",
    # A state written whole again, or a record deleted, leaves no parts behind.
    """CREATE TRIGGER IF NOT EXISTS stmtflow_state_parts_whole
    AFTER UPDATE OF state_parts ON stmtflow_instances
    WHEN NEW.state_parts = 0 AND OLD.state_parts > 0
BEGIN
    DELETE FROM stmtflow_state_parts WHERE id = NEW.id;
END""",
    """CREATE TRIGGER IF NOT EXISTS stmtflow_state_parts_deleted
    AFTER DELETE ON stmtflow_instances WHEN OLD.state_parts > 0
BEGIN
    DELETE FROM stmtflow_state_parts WHERE id = OLD.id;
END""",
)

_COLUMNS = (
    "id, workflow, data, state, status, version, wake_at, lease_owner, lease_expires, fence, "
    "error, created_at, updated_at"
)
_READ = _COLUMNS + ", state_parts"
"""What a read selects: a record's columns, then how many parts its state has (see `_whole`)."""

_MARK = lambda name: f":{name}"  # noqa: E731 - a one-line spelling rule
_LEASE_FREE = "(lease_expires IS NULL OR lease_expires < :now)"
_SAME = "IS"  # SQLite's null-safe equality, for the writes that need no RETURNING


class _Writes(NamedTuple):
    """A data write's statements, tried in turn (`stmtflow.stores._sql`)."""

    slim: str
    """For an exact copy whose ``status`` and ``wake_at`` are as stored: leaves their indexes be."""
    exact: str
    """For an exact copy: nothing returned."""
    returning: str
    """For any copy: returns the columns the write keeps."""


_UPDATE = {
    (fenced, release): _Writes(
        update_query(fenced=fenced, release=release, mark=_MARK, same=_SAME, parts=True, slim=True),
        update_query(fenced=fenced, release=release, mark=_MARK, same=_SAME, parts=True),
        update_query(fenced=fenced, release=release, mark=_MARK, parts=True),
    )
    for fenced in (False, True)
    for release in (False, True)
}
"""`SQLiteStore.update`'s statements by ``(fenced, release)``, built once: it runs once per
step."""

_UPDATE_FREE = {
    claim: _Writes(
        update_free_query(claim=claim, mark=_MARK, same=_SAME, parts=True, slim=True),
        update_free_query(claim=claim, mark=_MARK, same=_SAME, parts=True),
        update_free_query(claim=claim, mark=_MARK, parts=True),
    )
    for claim in (False, True)
}
"""`SQLiteStore.update_free`'s statements by whether it claims."""

_INDEXED_LIMIT = 4096
"""Rows whose indexed columns a store remembers (`SQLiteStore._note`) before it starts over."""


_TEXTS: dict[datetime, str] = {}
"""Datetimes written lately, as `_ts` wrote them: a unit writes its record's creation time,
wake-up time and lease expiry again with every step, and formatting one costs more than a look-up
(a datetime keeps its hash)."""

_TEXTS_LIMIT = 256


def _ts(value: datetime | None) -> str | None:
    """A datetime as fixed-width UTC ISO text (see the module docstring)."""
    if value is None:
        return None
    if type(value) is not datetime or value.tzinfo is not UTC:  # records hold UTC already
        return aware(value, "datetime").isoformat(timespec="microseconds")
    text = _TEXTS.get(value)  # equal UTC datetimes are one instant, written alike
    if text is None:
        if len(_TEXTS) >= _TEXTS_LIMIT:
            _TEXTS.clear()
        text = _TEXTS[value] = value.isoformat(timespec="microseconds")
    return text


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
    """Run a write built with ``same`` (see `stmtflow.stores._sql`): True when it changed the
    row, i.e. the caller's copy of the record was exact and the write is done. A record that did
    not come from the store (no ``created_at``) cannot be exact and is not tried."""
    if record.created_at is None:
        return False
    return conn.execute(sql, params | kept_params(record, _ts)).rowcount == 1


def _write_row(
    conn: sqlite3.Connection,
    writes: _Writes,
    params: dict[str, Any],
    record: Record,
    unmoved: bool,
) -> tuple[bool, tuple[Any, ...] | None]:
    """The instance row's part of a data write: the slim statement if the indexed columns are
    ``unmoved``, else (or if it changed nothing) the exact one, else the one with ``RETURNING``;
    as `SQLiteStore._write_data` returns it."""
    if (unmoved and _exact(conn, writes.slim, params, record)) or _exact(
        conn, writes.exact, params, record
    ):
        return True, None
    return False, _only(conn.execute(writes.returning, params))


def _record(row: tuple[Any, ...]) -> Record:
    """The record of a row read with `_COLUMNS` (with `_READ`, its state may be just the head)."""
    id_, workflow, data, state, status, version, wake_at, owner, expires, fence, error, c, u = row[
        :13
    ]
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


_pid = os.getpid()
"""This process's id, kept up to date at each fork: asking the system costs a system call, and
every store call checks whether it runs in the process that opened its connection."""


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class _ThreadConnection:
    """A thread's own connection (and the process that opened it: a forked child opens anew).

    ``with`` it gives the connection (a class, not a generator: it is entered by every call).
    """

    __slots__ = ("__weakref__", "conn", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.pid = conn, _pid

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        return None


class _SharedConnection:
    """The one connection of an in-memory database: ``with`` it holds the store's lock."""

    __slots__ = ("conn", "lock")

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self.conn, self.lock = conn, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


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
        self._shared = _SharedConnection(self._open(), self._lock) if self._memory else None
        self._parts = PartsCache()
        self._indexed: dict[str, tuple[int, str, str | None]] = {}
        """Per row, ``(version, status, wake_at)`` as this store last wrote or read them: a hint
        for the slim write (`_write_data`)."""
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

    def _conn(self) -> _ThreadConnection | _SharedConnection:
        """This thread's connection, to use in a ``with`` block."""
        if self._closed:
            raise StmtflowError(f"the SQLite store {self.path!r} is closed")
        if self._shared is not None:
            return self._shared
        mine: _ThreadConnection | None = getattr(self._local, "mine", None)
        if mine is None or mine.pid != _pid:
            mine = _ThreadConnection(self._open())
            # When the thread ends its locals are dropped: close its connection then.
            weakref.finalize(mine, self._forget, mine.conn)
            self._local.mine = mine
        return mine

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
        """Create the schema, or bring an older file's up to date (one transaction)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_META)
            row = conn.execute(
                "SELECT value FROM stmtflow_meta WHERE key = 'schema_version'"
            ).fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise StmtflowError(
                    f"the SQLite store {self.path!r} has schema version {row[0]}, newer than this "
                    f"release of stmtflow supports ({SCHEMA_VERSION}); upgrade stmtflow"
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(stmtflow_instances)")}
            if "state_parts" not in columns:  # a version 1 file
                conn.execute(
                    "ALTER TABLE stmtflow_instances "
                    "ADD COLUMN state_parts INTEGER NOT NULL DEFAULT 0"
                )
            for statement in _PARTS_SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO stmtflow_meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
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
        row = conn.execute(f"SELECT {_READ} FROM stmtflow_instances WHERE id = ?", (id,)).fetchone()
        if row is None:
            raise NotFound(f"no workflow instance with id {id!r}")
        self._note(id, (row[5], row[4], row[6]))  # version, status, wake_at
        return self._whole(conn, row)

    def _whole(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> Record:
        """The record of a row read with `_READ`, its state put together if kept in parts.

        The parts come from the cache when it holds this very version, else from the table, read
        in one transaction with the row (outside one, the row is read again inside it).
        """
        record = _record(row)
        count = row[13]
        if not count:
            return record
        id, version, updated_at = row[0], row[5], row[12]
        stored = self._parts.get(id, version, updated_at)
        if stored is None:
            if not conn.in_transaction:
                conn.execute("BEGIN")
                try:
                    return self._fetch(conn, id)
                finally:
                    conn.execute("COMMIT")
            stored = read_parts(conn, id, version, updated_at)
            if stored is not None:
                self._parts.put(id, stored)
        if stored is None or row_count(stored.texts) != count:
            found = "no tail row" if stored is None else f"{row_count(stored.texts)} rows"
            raise StmtflowError(
                f"the state of workflow instance {id!r} in {self.path!r} is damaged: it should "
                f"have {count} rows in stmtflow_state_parts, found {found}"
            )
        return with_changes(record, state=whole(record.state, stored.texts, stored.tail))

    def create(self, record: Record) -> Record:
        now = utcnow().isoformat(timespec="microseconds")  # as `_ts` writes it
        pieces = split(record.state)
        stored: Stored | None = None
        with self._write() if pieces else self._conn() as conn:
            cursor = conn.execute(
                f"INSERT INTO stmtflow_instances ({_COLUMNS}, state_parts) "
                "VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?) "
                f"ON CONFLICT (id) DO NOTHING RETURNING {_COLUMNS}",
                (
                    record.id,
                    record.workflow,
                    record.data,
                    pieces[0] if pieces else record.state,
                    record.status,
                    _ts(record.wake_at),
                    record.lease_owner,
                    _ts(record.lease_expires),
                    1 if record.lease_owner is not None else 0,
                    record.error,
                    _ts(record.created_at) or now,
                    now,
                    row_count(pieces[1]) if pieces else 0,
                ),
            )
            row = _only(cursor)
            if row is not None and pieces:
                _, parts, tail = pieces
                stored = write_parts(conn, record.id, None, parts, tail, 1, now)
        if row is None:
            raise ConflictError(f"a workflow instance with id {record.id!r} already exists")
        if stored is not None:
            self._parts.put(record.id, stored)
        return with_changes(_record(row), state=record.state)

    def get(self, id: str) -> Record:
        with self._conn() as conn:
            return self._fetch(conn, id)

    def list(
        self, status: str | None = None, workflow: str | None = None, limit: int | None = None
    ) -> builtins.list[Record]:
        sql, params = list_query(_READ, status, workflow, limit, _MARK)
        with self._conn() as conn:
            conn.execute("BEGIN")  # rows and their state parts from one snapshot
            try:
                rows = conn.execute(sql, params).fetchall()
                return [self._whole(conn, row) for row in rows]
            finally:
                conn.execute("COMMIT")

    def _write_data(
        self, record: Record, expected_version: int, params: dict[str, Any], writes: _Writes
    ) -> tuple[bool, tuple[Any, ...] | None]:
        """Run a data write: ``(True, None)`` when an exact statement wrote, ``(False, kept)``
        when the one with ``RETURNING`` did, and ``(False, None)`` when the write was refused.

        The slim statement is tried first when the row, as this store last wrote or read it,
        is at the expected version with the same ``status`` and ``wake_at`` (`_indexed`); it
        checks that itself, so a hint gone stale only costs the try. A small state is one
        statement (its parts, if it had any, go by trigger). A state kept in parts is written
        in one transaction with the rows of the parts that changed.
        """
        id = record.id
        pieces = split(record.state)
        params["state_parts"] = row_count(pieces[1]) if pieces else 0
        unmoved = self._indexed.get(id) == (expected_version, params["status"], params["wake_at"])
        written = (expected_version + 1, params["status"], params["wake_at"])
        if pieces is None:
            with self._conn() as conn:
                done, kept = _write_row(conn, writes, params, record, unmoved)
            self._note(id, written if done or kept is not None else None)
            return done, kept
        params["state"] = pieces[0]
        stored: Stored | None = None
        with self._write() as conn:
            row = conn.execute(
                "SELECT version, updated_at, state_parts FROM stmtflow_instances WHERE id = ?",
                (id,),
            ).fetchone()
            if row is None or row[0] != expected_version:
                self._note(id, None)
                return False, None
            old: Stored | None = None
            if row[2]:
                old = self._parts.get(id, row[0], row[1]) or read_parts(conn, id, row[0], row[1])
                if old is None or row_count(old.texts) != row[2]:  # damaged: write it afresh
                    old = None
                    conn.execute("DELETE FROM stmtflow_state_parts WHERE id = ?", (id,))
            done, kept = _write_row(conn, writes, params, record, unmoved)
            if done or kept is not None:
                _, parts, tail = pieces
                version, updated_at = expected_version + 1, params["updated_at"]
                stored = write_parts(conn, id, old, parts, tail, version, updated_at)
        self._note(id, written if stored is not None else None)
        if stored is None:
            return False, None
        self._parts.put(id, stored)
        return done, kept

    def _note(self, id: str, indexed: tuple[int, str, str | None] | None) -> None:
        """Remember a row's ``(version, status, wake_at)`` as just written or read (None: the
        row is not as this store thinks, forget it)."""
        known = self._indexed
        if indexed is None:
            known.pop(id, None)
            return
        if len(known) >= _INDEXED_LIMIT:
            known.clear()
        known[id] = indexed

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
        done, kept = self._write_data(record, expected_version, params, _UPDATE[fenced, release])
        if done:
            lease = {"lease_owner": None, "lease_expires": None} if release else {}
            return written_as_sent(record, expected_version, now, **lease)
        if kept is None:
            raise refusal(self.get(record.id), expected_version, fence)
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
        done, kept = self._write_data(record, expected_version, params, _UPDATE_FREE[claim])
        if done:
            fence = record.fence + 1 if claim else record.fence
            return written_as_sent(
                record,
                expected_version,
                updated_at,
                lease_owner=owner,
                lease_expires=expires,
                fence=fence,
            )
        if kept is None:
            raise refusal(self.get(record.id), expected_version, None, now)
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
            f"SELECT {_READ} FROM stmtflow_instances "
            f"WHERE wake_at IS NOT NULL AND wake_at <= :now AND {_LEASE_FREE} "
            "ORDER BY wake_at LIMIT :limit"
        )
        resuming_sql = (
            f"SELECT {_READ} FROM stmtflow_instances "
            f"WHERE status = 'resuming' AND {_LEASE_FREE} ORDER BY created_at LIMIT :limit"
        )
        with self._write() as conn:
            rows = [row for sql in (due_sql, resuming_sql) for row in conn.execute(sql, params)]
            found = {r.id: r for r in (self._whole(conn, row) for row in rows)}
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
                    f"WHERE id = ? AND lease_owner = ? AND fence = ? RETURNING {_READ}",
                    (_ts(now + lease), id, owner, fence),
                )
            )
            if row is None:
                current = self._fetch(conn, id)
                raise refusal(current, current.version, fence)
            return self._whole(conn, row)

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

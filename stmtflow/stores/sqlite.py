"""The embedded default store: one SQLite file, no server (stdlib `sqlite3`).

Durability and sharing:

- WAL journal, ``synchronous=FULL``: every committed write is fsynced before it returns.
- One connection per thread (and per process: a forked child opens its own), so readers do not
  wait for writers; several processes may share the file. Writers wait up to ``busy_timeout``.
- A data write (`SQLiteStore.update`, `SQLiteStore.update_free`) is a compare-and-set
  ``UPDATE ... WHERE id = ? AND version = ? ... RETURNING`` of the columns it leaves alone; no
  row returned means the write was refused, and the store reads the row to say why. It is
  tried first in the form that leaves the indexed ``status`` and ``wake_at`` be (`_Writes`).
- A state of 16 KB or more is kept in parts, one row per thread, and a write rewrites only the
  parts that changed, in one transaction with its row (`stmtflow.stores._sqlite_parts`).
- `SQLiteStore.claim_due` runs in a ``BEGIN IMMEDIATE`` transaction, which takes the file's
  write lock first, so two claimers can never pick the same record.

Rows are read by column name (`sqlite3.Row`). Datetimes are stored as fixed-width ISO-8601 text
in UTC with microseconds (``2025-01-02T03:04:05.000000+00:00``), so text comparison in SQL is
time comparison and the file stays readable with the ``sqlite3`` shell.

``sqlite:///:memory:`` gives a private in-memory database on one connection behind a lock.

The tables, and the upgrade of files an older release wrote: `stmtflow.stores._sqlite_schema`.
Beside the data writes kept here, the store's parts are mixins, one module each: its
connections (`stmtflow.stores._sqlite_connections`), leases (`_sqlite_leases`), reads
(`_sqlite_queries`), outbox and inbox calls (`_sqlite_messages`) and schedules
(`_sqlite_schedules`); how rows and times are spelled is `stmtflow.stores._sqlite_rows`'.

Example:
    >>> from stmtflow.stores.base import Record
    >>> with SQLiteStore(":memory:") as store:
    ...     store.create(Record(id="a", workflow="Order", data="{}", state="{}")).version
    1
"""

from __future__ import annotations

import builtins
import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from stmtflow.errors import ConflictError, NotFound, StmtflowError
from stmtflow.stores import _sqlite_history as _history
from stmtflow.stores import _sqlite_outbox as outbox
from stmtflow.stores._history import HistoryEvent, Snapshot
from stmtflow.stores._inputs import INPUT_COLUMNS, PendingInput, check_inputs, input_params
from stmtflow.stores._locks import apply_locks
from stmtflow.stores._sql import update_free_query, update_params, update_query, written
from stmtflow.stores._sqlite_connections import SQLiteConnections
from stmtflow.stores._sqlite_inbox import apply_messages, post
from stmtflow.stores._sqlite_leases import SQLiteLeases
from stmtflow.stores._sqlite_messages import SQLiteMessages
from stmtflow.stores._sqlite_parts import PartsCache, Stored, parts_to_store, row_count, whole
from stmtflow.stores._sqlite_parts import read as read_parts
from stmtflow.stores._sqlite_parts import write as write_parts
from stmtflow.stores._sqlite_queries import SQLiteQueries
from stmtflow.stores._sqlite_rows import _COLUMNS, _MARK, _READ, _dt, _record, _returned, _ts
from stmtflow.stores._sqlite_schedules import SQLiteSchedules
from stmtflow.stores._sqlite_schema import SCHEMA_VERSION, set_up
from stmtflow.stores.base import (
    NO_BATCH,
    Batch,
    Record,
    Store,
    free_lease,
    refusal,
    utcnow,
    with_changes,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

_OLDEST_SQLITE = (3, 35, 0)
"""The first SQLite with ``RETURNING``, which every write uses."""


class _Writes(NamedTuple):
    """A data write's two statements (`stmtflow.stores._sql`), tried in this order."""

    keeping: str
    """Leaves ``status`` and ``wake_at`` out of ``SET`` and writes only if the stored ones equal
    the new values, as in a step's write mid-run. SQLite rewrites the index entries of every
    column ``SET`` names, changed or not (three indexes read these two): this write commits one
    WAL page where the other commits four."""
    setting: str
    """Sets every written column: for a write that changes the status or the wake-up time."""


_UPDATE = {
    (fenced, release): _Writes(
        *(
            update_query(fenced=fenced, release=release, mark=_MARK, parts=True, keep_indexed=k)
            for k in (True, False)
        )
    )
    for fenced in (False, True)
    for release in (False, True)
}
"""`SQLiteStore.update`'s statements by ``(fenced, release)``."""

_UPDATE_FREE = {
    claim: _Writes(
        *(
            update_free_query(claim=claim, mark=_MARK, parts=True, keep_indexed=k)
            for k in (True, False)
        )
    )
    for claim in (False, True)
}
"""`SQLiteStore.update_free`'s statements by whether it claims."""


@functools.cache
def _appending(writes: _Writes, count: int, snapshots: int) -> _Writes:
    """``writes`` that also append ``count`` history events to the row's tail in the same
    statement, or change nothing when the tail cannot take them (`_sqlite_history.inline`)."""
    return _Writes(*(_history.inline(sql, count, snapshots) for sql in writes))


def _cas(conn: sqlite3.Connection, writes: _Writes, params: dict[str, Any]) -> sqlite3.Row | None:
    """Run a compare-and-set data write: the row it returned, or None if it was refused.

    ``writes.keeping`` changes nothing when the status or the wake-up time moved (or the write
    is refused): then ``writes.setting`` runs, and decides.
    """
    row = _returned(conn.execute(writes.keeping, params))
    return row if row is not None else _returned(conn.execute(writes.setting, params))


def _insert(params: dict[str, Any]) -> str:
    """An instance's ``INSERT`` of the columns in ``params`` (an existing id: no row returned)."""
    names = ", ".join(params)
    values = ", ".join(map(_MARK, params))
    return (
        f"INSERT INTO stmtflow_instances ({names}, version) VALUES ({values}, 1) "
        f"ON CONFLICT (id) DO NOTHING RETURNING {_COLUMNS}"
    )


_INSERT_INPUT = f"INSERT INTO stmtflow_inputs ({INPUT_COLUMNS}) VALUES ({', '.join('?' * 9)})"


def _replace_inputs(conn: sqlite3.Connection, id: str, rows: tuple[PendingInput, ...]) -> None:
    """Put ``rows`` in place of instance ``id``'s pending inputs (inside the write's
    transaction)."""
    conn.execute("DELETE FROM stmtflow_inputs WHERE instance_id = ?", (id,))
    if rows:
        conn.executemany(_INSERT_INPUT, [input_params(row, json.dumps, _ts) for row in rows])


class SQLiteStore(
    SQLiteConnections, SQLiteLeases, SQLiteQueries, SQLiteMessages, SQLiteSchedules, Store
):
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
        if sqlite3.sqlite_version_info < _OLDEST_SQLITE:
            raise StmtflowError(
                f"the SQLite store needs SQLite {'.'.join(map(str, _OLDEST_SQLITE))} or later "
                f"(for UPDATE ... RETURNING); this Python's sqlite3 uses {sqlite3.sqlite_version}"
            )
        self.path = path
        self._timeout = busy_timeout.total_seconds()
        self._memory = path == ":memory:"
        self._local = threading.local()
        self._lock = threading.RLock()
        self._all: list[sqlite3.Connection] = []
        self._closed = False
        self._shared = self._open() if self._memory else None
        self._parts = PartsCache()
        with self._conn() as conn:
            set_up(conn, self.path)

    # -- records ----------------------------------------------------------------------------

    def _fetch(self, conn: sqlite3.Connection, id: str) -> Record:
        row = conn.execute(f"SELECT {_READ} FROM stmtflow_instances WHERE id = ?", (id,)).fetchone()
        if row is None:
            raise NotFound(f"no workflow instance with id {id!r}")
        return self._whole(conn, row)

    def _whole(self, conn: sqlite3.Connection, row: sqlite3.Row) -> Record:
        """The record of a row read with `_READ`, its state put together if kept in parts.

        The parts come from the cache when it holds this very version, else from the table, read
        in one transaction with the row (outside one, the row is read again inside it).
        """
        record = _record(row, bool(row["inbox"]))
        count = row["state_parts"]
        if not count:
            return record
        stored = self._parts.get(record.id, row["version"], row["updated_at"])
        if stored is None:
            if not conn.in_transaction:
                conn.execute("BEGIN")
                try:
                    return self._fetch(conn, record.id)
                finally:
                    conn.execute("COMMIT")
            stored = read_parts(conn, record.id, row["version"], row["updated_at"])
            if stored is not None:
                self._parts.put(record.id, stored)
        if stored is None or row_count(stored.texts) != count:
            found = "no tail row" if stored is None else f"{row_count(stored.texts)} rows"
            raise StmtflowError(
                f"the state of workflow instance {record.id!r} in {self.path!r} is damaged: it "
                f"should have {count} rows in stmtflow_state_parts, found {found}"
            )
        return with_changes(record, state=whole(record.state, stored.texts, stored.tail))

    def create(self, record: Record, *, inputs: Sequence[PendingInput] | None = None) -> Record:
        now = utcnow().isoformat(timespec="microseconds")  # as `_ts` writes it
        rows = check_inputs(record.id, inputs or ())
        parts = parts_to_store(record.state)
        params = {
            "id": record.id,
            "workflow": record.workflow,
            "data": record.data,
            "state": record.state if parts is None else parts.head,
            "status": record.status,
            "wake_at": _ts(record.wake_at),
            "lease_owner": record.lease_owner,
            "lease_expires": _ts(record.lease_expires),
            "fence": 1 if record.lease_owner is not None else 0,
            "error": record.error,
            "created_at": _ts(record.created_at) or now,
            "updated_at": now,
            "state_parts": 0 if parts is None else row_count(parts.threads),
            "parent_id": record.parent_id,
            "root_id": record.root_id or record.id,
            "parent_event": record.parent_event,
            "on_parent_end": record.on_parent_end,
        }
        with self._write() if parts or rows else self._conn() as conn:
            row = _returned(conn.execute(_insert(params), params))
            stored: Stored | None = None
            if row is not None and parts is not None:
                stored = write_parts(conn, record.id, None, parts.threads, parts.tail, 1, now)
            if row is not None and rows:
                _replace_inputs(conn, record.id, rows)
        if row is None:
            raise ConflictError(f"a workflow instance with id {record.id!r} already exists")
        if stored is not None:  # committed
            self._parts.put(record.id, stored)
        return with_changes(_record(row), state=record.state)

    def _create_child(self, conn: sqlite3.Connection, record: Record, now: str) -> None:
        """Create ``record`` in a batch's transaction, whole (a new state is small), with its
        lease if it has one (as `create`); an id that exists is left as it is."""
        params = {
            "id": record.id,
            "workflow": record.workflow,
            "data": record.data,
            "state": record.state,
            "status": record.status,
            "wake_at": _ts(record.wake_at),
            "lease_owner": record.lease_owner,
            "lease_expires": _ts(record.lease_expires),
            "fence": 1 if record.lease_owner is not None else 0,
            "error": None,
            "created_at": now,
            "updated_at": now,
            "state_parts": 0,
            "parent_id": record.parent_id,
            "root_id": record.root_id or record.id,
            "parent_event": record.parent_event,
            "on_parent_end": record.on_parent_end,
        }
        _returned(conn.execute(_insert(params), params))

    def _apply(
        self, conn: sqlite3.Connection, id: str, batch: Batch, now: str, *, whole: bool = True
    ) -> None:
        """Apply ``batch`` for a write of instance ``id``, in the write's transaction (``whole``:
        the row holds the whole state, not its parts' head)."""
        for child in batch.create:
            self._create_child(conn, child, now)
        apply_messages(conn, id, batch, now)
        if batch.emit:
            outbox.emit(conn, batch.emit, now)
        if batch.history is not None:
            _history.append(conn, id, batch.history, whole=whole)
        if batch.locks is not None:
            for message in apply_locks(_executor(conn), id, batch.locks, _MARK):
                post(conn, message, now)

    # -- histories --------------------------------------------------------------------------

    def history(self, id: str) -> tuple[builtins.list[HistoryEvent], int]:
        with self._conn() as conn:
            return _history.events(conn, id)

    def snapshot(self, id: str, seq: int) -> Snapshot | None:
        with self._conn() as conn:
            return _history.snapshot(conn, id, seq)

    def prune(
        self,
        ended_before: datetime,
        *,
        workflow: str | None = None,
        limit: int = 100,
        now: datetime,
    ) -> builtins.list[str]:
        with self._write() as conn:  # one short transaction per batch
            return _history.prune(conn, _ts(ended_before) or "", _ts(now) or "", workflow, limit)

    def _write_data(
        self,
        record: Record,
        expected_version: int,
        writes: _Writes,
        params: dict[str, Any],
        batch: Batch,
        inputs: Sequence[PendingInput] | None,
    ) -> sqlite3.Row | None:
        """Run a data write (``sql``, from `stmtflow.stores._sql`): the columns it returned, or
        None when it was refused.

        A small state without a batch or pending inputs is one statement (its parts, if it had
        any, go by trigger). A state kept in parts is written in one transaction with the rows of
        the threads that changed; a batch, and the instance's pending inputs when they changed,
        are written in the write's transaction.
        """
        id = record.id
        rows = None if inputs is None else check_inputs(id, inputs)
        parts = parts_to_store(record.state)
        if parts is None:
            params["state_parts"] = 0
            if batch.empty and rows is None:
                with self._conn() as conn:
                    return _cas(conn, writes, params)
            history = batch.history
            if history is not None and rows is None and batch.only_history:
                # Only events: one statement, unless the tail is full or missing (or the write
                # is refused: then the transaction below decides).
                inline = _appending(writes, len(history.events), history.snapshots)
                with self._conn() as conn:
                    kept = _cas(conn, inline, params | _history.inline_params(history))
                if kept is not None:
                    return kept
            with self._write() as conn:
                kept = _cas(conn, writes, params)
                if kept is not None:
                    if rows is not None:
                        _replace_inputs(conn, id, rows)
                    self._apply(conn, id, batch, params["updated_at"])
                return kept
        params.update(state=parts.head, state_parts=row_count(parts.threads))
        with self._write() as conn:
            before = conn.execute(
                "SELECT version, updated_at, state_parts FROM stmtflow_instances WHERE id = ?",
                (id,),
            ).fetchone()
            if before is None or before["version"] != expected_version:
                return None
            kept = _cas(conn, writes, params)
            if kept is None:
                return None
            if rows is not None:
                _replace_inputs(conn, id, rows)
            old = self._old_parts(conn, id, before)
            version, updated_at = expected_version + 1, params["updated_at"]
            stored = write_parts(conn, id, old, parts.threads, parts.tail, version, updated_at)
            self._apply(conn, id, batch, updated_at, whole=False)
        self._parts.put(id, stored)
        return kept

    def _old_parts(self, conn: sqlite3.Connection, id: str, before: sqlite3.Row) -> Stored | None:
        """The parts a row held ``before`` a write, to compare with (None: it had none, or they
        were damaged and are deleted, so the write stores every part afresh)."""
        count, version, updated_at = before["state_parts"], before["version"], before["updated_at"]
        if not count:
            return None
        old = self._parts.get(id, version, updated_at) or read_parts(conn, id, version, updated_at)
        if old is None or row_count(old.texts) != count:
            conn.execute("DELETE FROM stmtflow_state_parts WHERE id = ?", (id,))
            return None
        return old

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
        params = update_params(record, expected_version, fence, _ts(now), _ts)
        writes = _UPDATE[fence is not None, release]
        kept = self._write_data(record, expected_version, writes, params, batch, inputs)
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
        batch: Batch = NO_BATCH,
        inputs: Sequence[PendingInput] | None = None,
    ) -> Record:
        now, expires = free_lease(now, owner, lease)
        updated_at = utcnow()
        writes = _UPDATE_FREE[owner is not None]
        params = update_params(record, expected_version, None, _ts(updated_at), _ts)
        params.update(now=_ts(now), owner=owner, expires=_ts(expires))
        kept = self._write_data(record, expected_version, writes, params, batch, inputs)
        if kept is None:
            raise refusal(self.get(record.id), expected_version, None, now)
        return written(record, kept, expected_version, updated_at, _dt)


def _executor(conn: sqlite3.Connection) -> Callable[[str, dict[str, Any]], list[Any]]:
    """Runs one statement of the lock index in ``conn``'s transaction (`apply_locks`)."""

    def execute(sql: str, params: dict[str, Any]) -> list[Any]:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]

    return execute

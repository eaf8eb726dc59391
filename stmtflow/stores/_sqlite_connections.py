"""The SQLite store's connections: one per thread (and per process), and its transactions.

Readers do not wait for writers (WAL); a write that must read first takes the file's write lock
before it reads (`SQLiteConnections._write`, ``BEGIN IMMEDIATE``). ``:memory:`` is one shared
connection behind a lock. A mixin of `stmtflow.stores.sqlite.SQLiteStore`, which opens them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator

from stmtflow.errors import StmtflowError

__all__ = ["SQLiteConnections"]


class _ThreadConnection:
    """A thread's own connection and the process that opened it (kept in a thread-local)."""

    __slots__ = ("__weakref__", "conn", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.pid = conn, os.getpid()


class SQLiteConnections:
    """Opening, handing out and closing the store's connections."""

    path: str
    _timeout: float
    _memory: bool
    _local: threading.local
    _lock: threading.RLock
    _all: list[sqlite3.Connection]
    _closed: bool
    _shared: sqlite3.Connection | None

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        if not self._memory:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        with self._lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (the in-memory database's one, holding the lock)."""
        if self._closed:
            raise StmtflowError(f"the SQLite store {self.path!r} is closed")
        if self._shared is not None:
            with self._lock:
                yield self._shared
            return
        mine: _ThreadConnection | None = getattr(self._local, "mine", None)
        if mine is None or mine.pid != os.getpid():  # a forked child opens its own
            mine = self._local.mine = _ThreadConnection(self._open())
            # When the thread ends its locals are dropped: close its connection then.
            weakref.finalize(mine, self._forget, mine.conn)
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

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()

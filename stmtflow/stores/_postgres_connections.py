"""The PostgreSQL store's connections: its URL's ``schema``, and the pool's hooks.

Every pooled connection is set to UTC and, with ``?schema=name``, to that schema's
``search_path`` (`PostgresConnections._configure`); one that idled is pinged when next taken
(`PostgresConnections._check`). A mixin of `stmtflow.stores.postgres.PostgresStore`, which
makes the pool.
"""

from __future__ import annotations

import weakref
from time import monotonic
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from stmtflow.stores._postgres_schema import set_up
from stmtflow.stores.base import redact

__all__ = ["PostgresConnections", "_split_schema"]


_IDLE_CHECK = 1.0
"""Seconds after its last checkout a pooled connection is pinged when next taken."""


def _split_schema(url: str) -> tuple[str, str | None]:
    """The libpq URL without the ``schema`` parameter, and that parameter."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    if len(schemas) > 1 or (schemas and not schemas[0]):
        raise ValueError(f"store URL {redact(url)!r}: give one non-empty schema= parameter")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), (schemas[0] if schemas else None)


class PostgresConnections:
    """The pool's ``configure`` and ``check`` hooks, the schema set-up, one-statement reads."""

    url: str
    schema: str | None
    _last_used: weakref.WeakKeyDictionary[psycopg.Connection[Any], float]
    _pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]]

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

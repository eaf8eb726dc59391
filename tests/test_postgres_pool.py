"""The PostgreSQL store's connection pool: a connection is pinged before use only after idling, and
is back in the pool as soon as its statement returns.

The store reaches into its own pool here (``store._pool``) to learn a connection's server
process, which the public API has no reason to expose.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from stmtflow.stores import Record, open_store

pytestmark = pytest.mark.postgres


def _pings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the pool's connection pings from now on."""
    from psycopg_pool import ConnectionPool

    pings: list[int] = []
    ping = ConnectionPool.check_connection

    def counting(conn: Any) -> None:
        pings.append(conn.info.backend_pid)
        ping(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counting))
    return pings


def test_a_connection_used_moments_ago_is_not_pinged(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(pg_url) as store:
        store.create(Record(id="a", workflow="W", data="{}", state="{}", status="waiting"))
        pings = _pings(monkeypatch)
        for _ in range(20):
            assert store.get("a").id == "a"
        # Each statement is one round trip, not two.
        assert pings == []


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_use(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stmtflow.stores import _postgres_connections, postgres

    monkeypatch.setattr(_postgres_connections, "_IDLE_CHECK", 0.05)
    with postgres.PostgresStore(pg_url, max_size=1) as store:  # one connection: the dropped one
        store.create(Record(id="a", workflow="W", data="{}", state="{}", status="waiting"))
        with store._pool.connection() as conn:
            dropped = conn.info.backend_pid
        import psycopg

        with psycopg.connect(store._pool.conninfo, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (dropped,))
        pings = _pings(monkeypatch)
        time.sleep(0.1)  # longer than the idle threshold
        assert store.get("a").id == "a"  # no error: the ping found it dead, another was used
        assert pings == [dropped]
        with store._pool.connection() as conn:
            assert conn.info.backend_pid != dropped


def test_a_connection_is_back_in_the_pool_when_the_statement_returns(pg_url: str) -> None:
    from stmtflow.stores import postgres

    with postgres.PostgresStore(pg_url, max_size=1) as store:
        store.create(Record(id="a", workflow="W", data="{}", state="{}", status="waiting"))
        for _ in range(20):
            assert store.get("a").id == "a"
            # Returned in the caller's thread, not handed to the pool's worker: the next
            # statement (of any thread) need not wait for a thread switch to get it.
            assert store._pool.get_stats()["pool_available"] == 1

"""Shared fixtures: the PostgreSQL server for store and engine tests; a check of every answer
of a thread index.

``pg_url`` gives each test its own, empty schema on the test server, named
``stmtflow_test_<pid>_<random>_<n>`` (one prefix per session, so concurrent runs never collide);
every schema the session handed out is dropped when it ends.

The server is ``$STMTFLOW_TEST_PG`` or ``postgresql://postgres@127.0.0.1:5432/test``. When it
cannot be reached (or psycopg is not installed) PostgreSQL tests are skipped with the reason --
unless ``$CI`` is set: in CI an unreachable server fails the run instead of hiding the tests.

``redis_url`` does the same for Redis (``$STMTFLOW_TEST_REDIS`` or ``redis://127.0.0.1:6379/0``):
each test gets its own key prefix, and the keys under it are deleted when the test ends (never
``FLUSHDB``: the server is shared).
``nats_url`` does the same for NATS (``$STMTFLOW_TEST_NATS`` or ``nats://127.0.0.1:4222``, with
JetStream): a bucket of the test's own, deleted with its index streams after the test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from redis_server import PrivateRedis
from thread_scans import SCANS, same

from stmtflow.core._program import _Cursor
from stmtflow.core._thread_index import ThreadIndex
from stmtflow.dsl._kind import rules
from stmtflow.state import Thread

DEFAULT_TEST_PG = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/0"


def with_schema(url: str, schema: str) -> str:
    """``url`` with its ``schema`` query parameter set to ``schema``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"] + [("schema", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so tests needing this server must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The reachable test server's URL (no schema); skips (fails under CI) if unreachable."""
    url = os.environ.get("STMTFLOW_TEST_PG", DEFAULT_TEST_PG)
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed: pip install 'stmtflow[postgres]'")
        raise  # unreachable: _unavailable raised
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _unavailable(f"PostgreSQL test server {url} is unreachable: {first}")
    yield url


@pytest.fixture(scope="session")
def pg_schema_factory(pg_server: str) -> Iterator[Callable[[], str]]:
    """Makes a URL with a fresh schema name each call; drops every such schema at the end."""
    import psycopg
    from psycopg import sql

    prefix = f"stmtflow_test_{os.getpid()}_{secrets.token_hex(3)}"
    made: list[str] = []

    def new_url() -> str:
        name = f"{prefix}_{len(made)}"
        made.append(name)
        return with_schema(pg_server, name)

    yield new_url
    if made:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            for name in made:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )


@pytest.fixture
def pg_url(pg_schema_factory: Callable[[], str]) -> str:
    """A PostgreSQL store URL whose schema is this test's alone (created on first use)."""
    return pg_schema_factory()


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The reachable Redis test server's URL; skips (fails under CI) if unreachable."""
    url = os.environ.get("STMTFLOW_TEST_REDIS", DEFAULT_TEST_REDIS)
    try:
        import redis
    except ImportError:
        _unavailable("redis-py is not installed: pip install 'stmtflow[redis]'")
        raise  # unreachable: _unavailable raised
    try:
        with redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis test server {url} is unreachable: {exc}")
    return url


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix:`` (a test's own; SCAN is fine outside the store)."""
    import redis

    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A Redis store URL with a key prefix of this test's own, deleted when the test ends."""
    prefix = f"stmtflow_test_{os.getpid()}_{secrets.token_hex(4)}"
    sep = "&" if "?" in redis_server else "?"
    yield f"{redis_server}{sep}prefix={prefix}"
    delete_prefix(redis_server, prefix)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A running ``redis-server`` of this test's own (AOF, ``appendfsync always``)."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = PrivateRedis(directory)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _every_move_into_a_real_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step a kind's rule makes `into` a child, in any test, is the child its kind lists.

    A rule hands the cursor the child it enters (it has it at hand); positions are stored and
    found again by the indices `Kind.children` gives, so a rule whose child and index disagree
    would leave a thread at a place its stored path does not lead to.
    """
    into = _Cursor.into

    def checked(self: _Cursor, index: int, child: Any) -> None:
        node = self.chain[-1]
        listed = rules(node).children(node)
        assert index < len(listed) and listed[index] is child, (
            f"{type(node).__name__} went into child {index}, which is not the one it lists"
        )
        into(self, index, child)

    monkeypatch.setattr(_Cursor, "into", checked)


@pytest.fixture(autouse=True)
def _every_thread_index_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer a `ThreadIndex` gives in any test is compared with a scan of the threads.

    The interpreter keeps its index in step with each change it makes to a thread, and skips
    the call where a change keeps a thread filed the same; one it got wrong would run the wrong
    thread or miss a wake-up. Here it fails the test that made it instead.
    """
    lists: dict[int, tuple[ThreadIndex, list[Thread]]] = {}
    init = ThreadIndex.__init__

    def tracked(self: ThreadIndex, threads: Iterable[Thread] = ()) -> None:
        assert isinstance(threads, list), "an index is built from the state's thread list"
        init(self, threads)
        lists[id(self)] = (self, threads)

    def checking(name: str, scan: Callable[..., Any]) -> None:
        answer = getattr(ThreadIndex, name)

        def checked(self: ThreadIndex, *args: Any) -> Any:
            got = answer(self, *args)
            expected = scan(lists[id(self)][1], *args)
            assert same(got, expected), f"ThreadIndex.{name}: {got!r}, a scan gives {expected!r}"
            return got

        monkeypatch.setattr(ThreadIndex, name, checked)

    monkeypatch.setattr(ThreadIndex, "__init__", tracked)
    for name, scan in SCANS.items():
        checking(name, scan)


DEFAULT_TEST_NATS = "nats://127.0.0.1:4222"


@pytest.fixture(scope="session")
def nats_server() -> str:
    """The reachable NATS server (with JetStream); skips (fails under CI) if unreachable."""
    url = os.environ.get("STMTFLOW_TEST_NATS", DEFAULT_TEST_NATS)
    try:
        import nats
    except ImportError:
        _unavailable("nats-py is not installed: pip install 'stmtflow[nats]'")
        raise  # unreachable: _unavailable raised

    async def probe() -> None:
        nc = await nats.connect(url, connect_timeout=3, allow_reconnect=False)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure to connect or to find JetStream: report it
        _unavailable(f"NATS test server {url} (with JetStream) is unreachable: {exc!r}")
    return url


@pytest.fixture
def nats_url_factory(nats_server: str) -> Iterator[Callable[[], str]]:
    """Makes a store URL with a bucket of its own each call; deletes every such bucket after."""
    from stmtflow.stores.nats import drop

    prefix = f"stmtflow_test_{os.getpid()}_{secrets.token_hex(3)}"
    made: list[str] = []

    def new_url() -> str:
        made.append(f"{nats_server}?bucket={prefix}_{len(made)}")
        return made[-1]

    yield new_url
    for url in made:
        drop(url)


@pytest.fixture
def nats_url(nats_url_factory: Callable[[], str]) -> str:
    """A NATS store URL whose bucket is this test's alone (deleted after it)."""
    return nats_url_factory()

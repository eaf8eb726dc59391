"""Database plumbing for the benchmarks: the PostgreSQL schema of a run, raw connections, and
bulk copies of a stored record.

Large set-ups (a million sleeping instances, many copies of an instance with a long history)
bypass the engine: the store writes one valid *template* record, and one SQL statement clones it,
substituting the instance id inside the state JSON. Every clone is thus a record the store itself
could have written, byte for byte, but for its id.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from stmtflow.core._thread_index import ThreadIndex
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.runtime._unit import wake_at
from stmtflow.state import State
from stmtflow.stores import Record

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
"""The server used unless ``$STMTFLOW_BENCH_PG`` (or ``$STMTFLOW_TEST_PG``) names another."""


def pg_server() -> str:
    """The PostgreSQL server URL (no schema) the benchmarks use."""
    return os.environ.get("STMTFLOW_BENCH_PG") or os.environ.get("STMTFLOW_TEST_PG") or DEFAULT_PG


def run_schema() -> str:
    """This run's own schema name (dropped when the run ends)."""
    return f"stmtflow_bench_{os.getpid()}"


def with_schema(url: str, schema: str) -> str:
    """``url`` with its ``schema`` query parameter set (how the store picks a schema)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"] + [("schema", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _split(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def pg_reachable(url: str) -> str | None:
    """None when the server answers, else why not (one line)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'stmtflow[postgres]')"
    try:
        with psycopg.connect(_split(url)[0], connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        text = str(exc).strip()
        return f"PostgreSQL at {url} is unreachable: {text.splitlines()[0] if text else exc!r}"
    return None


@contextmanager
def pg_connect(url: str) -> Iterator[Any]:
    """A raw autocommit psycopg connection with ``search_path`` set to the URL's schema."""
    import psycopg
    from psycopg import sql

    libpq, schema = _split(url)
    with psycopg.connect(libpq, autocommit=True) as conn:
        if schema:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        yield conn


def pg_drop_schema(url: str) -> None:
    """Drop the URL's schema and everything in it."""
    from psycopg import sql

    _, schema = _split(url)
    if schema:
        with pg_connect(url) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def pg_truncate(url: str) -> None:
    """Empty the instances table of the URL's schema (between workloads), and the tables whose
    rows belong to an instance (the pending inputs)."""
    with pg_connect(url) as conn:
        conn.execute("TRUNCATE stmtflow_instances CASCADE")


def server_version(url: str) -> str:
    with pg_connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def template_record(wf: WorkflowState, state: State, workflow: str) -> Record:
    """The record of an instance run in memory, ready for `Store.create` (id: ``state.id``).

    Status and wake-up time are what the engine would store for that data and state (with its
    default error backoff).
    """
    return Record(
        id=state.id,
        workflow=workflow,
        data=wf.model_dump_json(),
        state=state.model_dump_json(),
        status=state.status.value,
        wake_at=wake_at(
            state, ThreadIndex(state.threads), datetime.now(UTC), timedelta(seconds=30)
        ),
    )


def _quoted(id: str) -> str:
    return f'"{id}"'


_SQLITE_CLONE = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
INSERT INTO stmtflow_instances (id, workflow, data, state, status, version, wake_at, lease_owner,
    lease_expires, fence, error, created_at, updated_at, state_parts)
SELECT :prefix || printf('%0{width}d', i), t.workflow, t.data,
    replace(t.state, :token, '"' || :prefix || printf('%0{width}d', i) || '"'),
    t.status, t.version, t.wake_at, NULL, NULL, 0, NULL, t.created_at,
    t.updated_at, t.state_parts
FROM n, stmtflow_instances AS t WHERE t.id = :template
"""

# A large state keeps its threads in rows of their own (stmtflow.stores._sqlite_parts).
_SQLITE_CLONE_PARTS = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
INSERT INTO stmtflow_state_parts (id, pos, text)
SELECT :prefix || printf('%0{width}d', i), p.pos,
    replace(p.text, :token, '"' || :prefix || printf('%0{width}d', i) || '"')
FROM n, stmtflow_state_parts AS p WHERE p.id = :template
"""

_PG_CLONE = """
INSERT INTO stmtflow_instances (id, workflow, data, state, status, version, wake_at, lease_owner,
    lease_expires, fence, error, created_at, updated_at)
SELECT %(prefix)s || lpad(i::text, %(width)s, '0'), t.workflow, t.data,
    replace(t.state, %(token)s, '"' || %(prefix)s || lpad(i::text, %(width)s, '0') || '"'),
    t.status, t.version, t.wake_at, NULL, NULL, 0, NULL, t.created_at,
    t.updated_at
FROM generate_series(0, %(count)s - 1) AS i, stmtflow_instances AS t WHERE t.id = %(template)s
"""


def warm_disk(directory: Path, seconds: float) -> int:
    """Commit (WAL, ``synchronous=FULL``) in a file of ``directory`` for ``seconds``; how many.

    On the virtual disks this runs on, commits are slow for a second or two after the disk sat
    idle (measured: a W2 delivery 1.3-2.2 ms right after 2 s without writes, 0.6-0.8 ms after
    1.5 s of commits), e.g. after a CPU-only set-up such as W2's history of 100 000 steps built
    in memory. Disk-bound workloads call this just before their timed part, so they measure the
    working disk rather than its wake-up. The file is the benchmark's own, beside the store's.
    """
    conn = sqlite3.connect(directory / "warm.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS warm (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.execute("INSERT OR REPLACE INTO warm (id, n) VALUES (1, 0)")
        commits, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            conn.execute("UPDATE warm SET n = n + 1 WHERE id = 1")
            commits += 1
        return commits
    finally:
        conn.close()


def clone_ids(prefix: str, count: int) -> list[str]:
    """The ids `sqlite_clone` / `pg_clone` give their clones."""
    width = len(str(max(count - 1, 0)))
    return [f"{prefix}{i:0{width}d}" for i in range(count)]


def sqlite_clone(path: str, template_id: str, prefix: str, count: int) -> None:
    """Insert ``count`` copies of the stored record ``template_id`` in one transaction."""
    width = len(str(max(count - 1, 0)))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("BEGIN IMMEDIATE")
        params = {
            "count": count,
            "prefix": prefix,
            "token": _quoted(template_id),
            "template": template_id,
        }
        conn.execute(_SQLITE_CLONE.format(width=width), params)
        conn.execute(_SQLITE_CLONE_PARTS.format(width=width), params)
        conn.execute("COMMIT")
        # Fold the set-up into the database file now, so no timed commit pays for it.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def pg_clone(url: str, template_id: str, prefix: str, count: int) -> None:
    """`sqlite_clone` for PostgreSQL."""
    width = len(str(max(count - 1, 0)))
    with pg_connect(url) as conn:
        conn.execute(
            _PG_CLONE,
            {
                "count": count,
                "prefix": prefix,
                "width": width,
                "token": _quoted(template_id),
                "template": template_id,
            },
        )


def open_schema(url: str) -> None:
    """Create the store's tables in the URL's schema (the store does it on first open)."""
    from stmtflow.stores import open_store

    open_store(url).close()


# -- Redis ---------------------------------------------------------------------------------------

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
"""The Redis server used unless ``$STMTFLOW_BENCH_REDIS`` (or ``$STMTFLOW_TEST_REDIS``) names
another. Point it at a server started with ``appendonly yes`` and ``appendfsync always`` to
measure the durable setting."""


def redis_server() -> str:
    """The Redis server URL (no prefix) the benchmarks use."""
    return (
        os.environ.get("STMTFLOW_BENCH_REDIS")
        or os.environ.get("STMTFLOW_TEST_REDIS")
        or DEFAULT_REDIS
    )


def redis_reachable(url: str) -> str | None:
    """None when the Redis server answers, else why not (one line)."""
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install 'stmtflow[redis]')"
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        return f"Redis at {url} is unreachable: {exc}"
    return None


def with_prefix(url: str, prefix: str) -> str:
    """``url`` with its ``prefix`` query parameter set (how the Redis store names its keys)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "prefix"] + [("prefix", prefix)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def redis_client(url: str) -> Any:
    """A redis-py client (str replies) of the URL's server, without the store's prefix."""
    import redis

    parts = urlsplit(url)
    rest = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "prefix"])
    return redis.Redis.from_url(urlunsplit(parts._replace(query=rest)), decode_responses=True)


def redis_info(url: str) -> dict[str, str]:
    """The server's version and durability settings, as the report states them."""
    with redis_client(url) as client:
        info: dict[str, str] = {"version": str(client.info("server").get("redis_version", "?"))}
        for name in ("appendonly", "appendfsync"):
            try:
                info.update(client.config_get(name))
            except Exception:  # managed servers may refuse CONFIG: report what is known
                info[name] = "unknown"
    return info


def redis_durability(url: str) -> str:
    """One line for the notes: the AOF setting the figures were measured with."""
    info = redis_info(url)
    if info.get("appendonly") != "yes":
        return "no AOF: acknowledged writes live in memory only"
    return f"AOF, appendfsync {info.get('appendfsync', '?')}"


def redis_prefix(url: str) -> str:
    """The URL's key prefix (a benchmark URL always has its own)."""
    prefix = dict(parse_qsl(urlsplit(url).query)).get("prefix")
    assert prefix, "a benchmark Redis URL has a prefix of its own"
    return prefix


def redis_delete(url: str) -> None:
    """Delete every key under the URL's prefix (set-up and clean-up, not a store operation)."""
    prefix = redis_prefix(url)
    with redis_client(url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])


def store_clone(store: Any, template_id: str, prefix: str, count: int) -> None:
    """`sqlite_clone` through the store's own `Store.create` (for stores without SQL)."""
    template = store.get(template_id)
    for id in clone_ids(prefix, count):
        state = template.state.replace(_quoted(template_id), _quoted(id))
        store.create(
            Record(
                id=id,
                workflow=template.workflow,
                data=template.data,
                state=state,
                status=template.status,
                wake_at=template.wake_at,
                created_at=template.created_at,
            )
        )

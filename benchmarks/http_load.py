"""HTTP load: N events to M waiting instances through the service, and through `Engine.send`.

    python -m benchmarks.http_load                      # N = 10 000 events, M = 1 000 instances
    python -m benchmarks.http_load --events 500 --instances 50     # a quick run

Everything on loopback against the PostgreSQL server of the benchmarks (``$STMTFLOW_BENCH_PG``,
default ``postgresql://postgres@127.0.0.1:5432/test``), in a schema of its own dropped at the
end. M `Inbox` instances each wait on ``ping`` in a loop; event i goes to instance i mod M.

1. HTTP: the app (`stmtflow.http.create_app`) served by ``stmtflow serve`` in a process of its
   own; the load from ``--concurrency`` threads sharing one ``httpx.Client`` whose pool holds
   that many connections, then again from one ``httpx.AsyncClient`` with at most that many
   requests in flight (the async client is the slower load generator: the two rows differ by
   the client, not the server); each request's latency from send to answer.
2. Direct: the same events through `Engine.send` from ``--concurrency`` threads.
3. How a route waits on the store without blocking the loop: ``--concurrency`` concurrent
   reads of one record, through the engine's thread pool (what the routes do) and through
   psycopg's own async pool (what an async store would do).

Prints one table: events (or reads) per second and p50/p99 latency in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import stmtflow as sf
from benchmarks.db import pg_drop_schema, pg_reachable, pg_server, with_schema
from stmtflow.runtime import Engine


class Inbox(sf.WorkflowState):
    """Waits on ``ping`` forever, counting."""

    count: int = 0

    def definition(self) -> sf.Section:
        return sf.S(sf.For("loop", lambda: True, sf.Wait("w", sf.OnEvent("ping", self.ping))))

    def ping(self, n: int) -> None:
        self.count += 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _row(name: str, count: int, seconds: float, latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "run": name,
        "count": count,
        "per_s": count / seconds,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


async def _bounded(
    total: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run ``one(i)`` for every i with at most ``concurrency`` in flight; time and latencies."""
    latencies: list[float] = []
    queue = iter(range(total))

    async def lane() -> None:
        for i in queue:
            began = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - began, latencies


def _http(url: str, events: int, instances: int, concurrency: int) -> list[dict[str, Any]]:
    """The service in a process of its own (``stmtflow serve``), as deployed: the load
    generator does not share its GIL."""
    import httpx

    port = _free_port()
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "stmtflow.cli",
        "--db",
        url,
        "serve",
        "benchmarks.http_load:Inbox",
    ]
    command += ["--port", str(port), "--no-worker", "--server-log-level", "warning"]
    server = subprocess.Popen(command, env=env, cwd=root, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    why = server.stderr.read() if server.stderr else server.returncode
                    raise RuntimeError(f"the service did not start: {why}") from None
                time.sleep(0.05)

        rows = [
            _row(
                "HTTP: httpx.Client, threads",
                events,
                *_threaded(base, events, instances, concurrency),
            ),
            _row(
                "HTTP: httpx.AsyncClient",
                events,
                *asyncio.run(_async(base, events, instances, concurrency)),
            ),
        ]
    finally:
        server.terminate()
        server.communicate(timeout=30)
    return rows


def _threaded(
    base: str, events: int, instances: int, concurrency: int
) -> tuple[float, list[float]]:
    """``concurrency`` threads sharing one ``httpx.Client`` (its pool: that many connections)."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    with httpx.Client(base_url=base, limits=limits, timeout=60) as client:

        def one(i: int) -> None:
            began = time.perf_counter()
            answer = client.post(f"/instances/i-{i % instances}/events/ping", json=i)
            latencies.append(time.perf_counter() - began)
            if answer.status_code != 200:
                raise RuntimeError(f"event {i}: {answer.status_code} {answer.text}")

        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(events)))
        return time.perf_counter() - began, latencies


async def _async(
    base: str, events: int, instances: int, concurrency: int
) -> tuple[float, list[float]]:
    """One ``httpx.AsyncClient``, at most ``concurrency`` requests in flight."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one(i: int) -> None:
            answer = await client.post(f"/instances/i-{i % instances}/events/ping", json=i)
            if answer.status_code != 200:
                raise RuntimeError(f"event {i}: {answer.status_code} {answer.text}")

        return await _bounded(events, concurrency, one)


def _direct(engine: Engine, events: int, instances: int, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        began = time.perf_counter()
        engine.send(f"i-{i % instances}", "ping", i)
        with lock:
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(events)))
    return _row("Engine.send (threads)", events, time.perf_counter() - began, latencies)


def _reads(engine: Engine, url: str, reads: int, concurrency: int) -> list[dict[str, Any]]:
    from psycopg_pool import AsyncConnectionPool

    from benchmarks.db import _split

    libpq, schema = _split(url)

    async def thread_pool() -> tuple[float, list[float]]:
        async def one(i: int) -> None:
            await engine.athread(engine.store.get, "i-0")

        return await _bounded(reads, concurrency, one)

    async def native() -> tuple[float, list[float]]:
        async def configure(conn: Any) -> None:
            await conn.execute(f'SET search_path TO "{schema}"')
            await conn.commit()

        async with AsyncConnectionPool(
            libpq, min_size=10, max_size=10, configure=configure, open=False
        ) as pool:
            await pool.wait()  # all ten connections made before the clock starts

            async def one(i: int) -> None:
                async with pool.connection() as conn:
                    cur = await conn.execute(
                        "SELECT id, workflow, data, state, status, version"
                        " FROM stmtflow_instances WHERE id = %s",
                        ("i-0",),
                    )
                    await cur.fetchone()

            return await _bounded(reads, concurrency, one)

    rows = []
    for name, run in (("read: engine thread pool", thread_pool), ("read: psycopg async", native)):
        seconds, latencies = asyncio.run(run())
        rows.append(_row(name, reads, seconds, latencies))
    return rows


def run(
    url: str, events: int, instances: int, concurrency: int, *, drop: bool = True
) -> list[dict[str, Any]]:
    """The three runs on a fresh schema of ``url``; the table's rows."""
    engine = Engine(url, workflows=[Inbox])
    try:
        for n in range(instances):
            engine.start(Inbox, id=f"i-{n}")
        rows = [
            *_http(url, events, instances, concurrency),
            _direct(engine, events, instances, concurrency),
            *_reads(engine, url, max(events // 5, 10), concurrency),
        ]
        total = sum(i.data.count for i in engine.list() if isinstance(i.data, Inbox))
        if total != 3 * events:
            raise RuntimeError(f"{total} events counted, {3 * events} sent")
    finally:
        engine.close()
        if drop:
            pg_drop_schema(url)
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'run':<30} {'count':>7} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8}"]
    for r in rows:
        lines.append(
            f"{r['run']:<30} {r['count']:>7} {r['per_s']:>9.0f} {r['p50_ms']:>8.2f}"
            f" {r['p99_ms']:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--db", help="a PostgreSQL URL (default: the benchmarks' server)")
    args = parser.parse_args(argv)
    server = args.db or pg_server()
    why = pg_reachable(server)
    if why is not None:
        print(f"skipped: {why}")
        return 1
    url = with_schema(server, f"stmtflow_httpload_{int(time.time())}")
    print(
        f"{args.events} events to {args.instances} instances, concurrency {args.concurrency}, "
        "PostgreSQL on loopback"
    )
    print(table(run(url, args.events, args.instances, args.concurrency)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

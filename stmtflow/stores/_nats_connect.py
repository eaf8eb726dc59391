"""Connecting the NATS store: the URL's settings, the connection, the bucket and index streams.

`connect` opens one connection (which then reconnects for ever: calls wait meanwhile), checks
JetStream, and creates what is missing: the KV bucket and every index stream
(`stmtflow.stores._nats_keys.Names.streams`), so a store opened by a newer release gains the
streams it added. ``meta.schema`` holds the layout version: a newer one is refused, an older
one is upgraded by the store (`stmtflow.stores._nats_prune.upgrade`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as Connection
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from stmtflow.errors import StmtflowError
from stmtflow.stores._nats_keys import SCHEMA_VERSION, Names

__all__ = ["Settings", "connect", "why"]


class Settings:
    """What the URL says: server, bucket, storage, replicas, timeout."""

    def __init__(
        self, server: str, bucket: str, storage: str, replicas: int, timeout: float
    ) -> None:
        self.server, self.bucket, self.timeout = server, bucket, timeout
        self.storage = api.StorageType.MEMORY if storage == "memory" else api.StorageType.FILE
        self.replicas = replicas


async def connect(
    s: Settings, names: Names, url: str, reconnecting: Callable[[str], None]
) -> tuple[Connection, JetStreamContext, KeyValue, int]:
    """The connection, its JetStream context, the bucket and the layout version it had
    (``reconnecting`` is told why each later reconnection attempt failed)."""
    errors: list[Exception] = []

    async def failed(exc: Exception) -> None:  # each failed (re)connection attempt
        errors.append(exc)
        reconnecting(why(exc))

    wait = min(s.timeout / 2, 5.0)  # leaves the call's own timeout room to say why
    try:
        nc = await asyncio.wait_for(
            nats.connect(
                servers=[s.server],
                name="stmtflow",
                connect_timeout=wait,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=failed,
            ),
            wait,
        )
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        reason = why(errors[-1] if errors else exc)
        raise StmtflowError(f"cannot reach NATS at {url}: {reason}") from exc
    js = nc.jetstream(timeout=s.timeout)
    try:
        await js.account_info()
    except nats.errors.Error as exc:
        await nc.close()
        raise StmtflowError(f"NATS at {url} has no JetStream: {why(exc)}") from exc
    try:
        kv, layout = await _setup(js, s, names, url)
    except BaseException:
        await nc.close()
        raise
    return nc, js, kv, layout


async def _setup(js: JetStreamContext, s: Settings, names: Names, url: str) -> tuple[KeyValue, int]:
    try:
        kv = await js.key_value(s.bucket)
    except nats.js.errors.BucketNotFoundError:
        kv = await js.create_key_value(
            bucket=s.bucket, history=1, storage=s.storage, replicas=s.replicas
        )
    for stream, subjects in names.streams().items():
        try:
            await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                name=stream,
                subjects=subjects,
                max_msgs_per_subject=1,
                storage=s.storage,
                num_replicas=s.replicas,
                allow_direct=True,
                discard=api.DiscardPolicy.OLD,
            )
    try:
        await kv.create("meta.schema", str(SCHEMA_VERSION).encode())
    except nats.js.errors.KeyWrongLastSequenceError:
        stored = int((await kv.get("meta.schema")).value or b"0")
        if stored > SCHEMA_VERSION:
            raise StmtflowError(
                f"the NATS store {url} has layout version {stored}, newer than this release "
                f"of stmtflow supports ({SCHEMA_VERSION}); upgrade stmtflow"
            ) from None
        return kv, stored
    return kv, SCHEMA_VERSION


def why(exc: BaseException) -> str:
    """The first line of what ``exc`` says (its type when it says nothing)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""Sinks for the outbox: a Redis stream and a NATS JetStream subject.

A sink is any callable taking an `OutboxMessage`: it returns when the message is taken, and
raises when it is not (the outbox then retries it later, `stmtflow.runtime._outbox`). These two
send to real brokers; each connects on first use and is closed by `Engine.close`.

Delivery is at least once: a message may reach a sink twice (a crash after the broker took it,
before the outbox forgot it). The NATS sink sends the message's key as ``Nats-Msg-Id``, so
JetStream drops such a duplicate (within the stream's duplicate window, two minutes by default,
longer than the outbox's claim of 30 seconds); a Redis stream keeps both, and its consumers
deduplicate by the ``key`` field.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from stmtflow.stores._nats_loop import LoopThread
from stmtflow.stores._outbox import OutboxMessage
from stmtflow.stores.base import redact

__all__ = ["NatsSink", "RedisStreamSink", "sink_from_url"]


class RedisStreamSink:
    """Append each message to a Redis stream with ``XADD`` (needs ``stmtflow[redis]``).

    Each entry's fields: ``key`` (the message's stable key: deduplicate by it), ``topic``,
    ``payload`` (JSON text), ``instance``, ``thread``, ``step``.

    Args:
        url: a ``redis://`` (or ``rediss://``) URL.
        stream: the stream's key.
        maxlen: trim the stream to about this many entries (``MAXLEN ~``); None keeps all.

    Example:
        >>> sink = RedisStreamSink("redis://127.0.0.1:6379/0", "orders")
        >>> sink.name
        'redis stream orders at redis://127.0.0.1:6379/0'
    """

    def __init__(self, url: str, stream: str, *, maxlen: int | None = None) -> None:
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"a Redis stream name must be a non-empty string, got {stream!r}")
        self.url = url
        self.stream = stream
        self.maxlen = maxlen
        self.name = f"redis stream {stream} at {redact(url)}"
        self._client: Any = None
        self._lock = threading.Lock()

    def _redis(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import redis
                except ImportError as exc:  # pragma: no cover - depends on the environment
                    raise ImportError(
                        "RedisStreamSink needs redis-py: pip install 'stmtflow[redis]'"
                    ) from exc
                self._client = redis.Redis.from_url(self.url, socket_timeout=10)
            return self._client

    def __call__(self, message: OutboxMessage) -> None:
        fields = {
            "key": message.key,
            "topic": message.topic,
            "payload": message.payload,
            "instance": message.instance_id,
            "thread": message.thread_id,
            "step": message.step,
        }
        self._redis().xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)

    def close(self) -> None:
        """Close the connection (a later message opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


class NatsSink:
    """Publish each message to a JetStream subject, ``Nats-Msg-Id`` set to its key (needs
    ``stmtflow[nats]``).

    The body is the payload's JSON; the headers carry ``Nats-Msg-Id`` (the key: JetStream
    drops a message whose id it saw within the stream's duplicate window), ``Stmtflow-Topic``,
    ``Stmtflow-Instance``, ``Stmtflow-Thread`` and ``Stmtflow-Step``. A publish returns once
    the stream stored the message (a JetStream acknowledgement), so a stream must capture
    ``subject``: give ``stream`` to have the sink create one (subjects ``[subject]``) when it
    does not exist.

    Args:
        url: a ``nats://`` URL.
        subject: where messages are published.
        stream: the name of a stream to create for ``subject`` if missing (None: one exists).
        timeout: seconds to wait for the connection and each acknowledgement.

    Example:
        >>> sink = NatsSink("nats://127.0.0.1:4222", "orders.events", stream="ORDERS")
        >>> sink.name
        'nats subject orders.events at nats://127.0.0.1:4222'
    """

    def __init__(
        self, url: str, subject: str, *, stream: str | None = None, timeout: float = 10.0
    ) -> None:
        if not isinstance(subject, str) or not subject:
            raise ValueError(f"a NATS subject must be a non-empty string, got {subject!r}")
        self.url = url
        self.subject = subject
        self.stream = stream
        self.timeout = timeout
        self.name = f"nats subject {subject} at {redact(url)}"
        self._loop = LoopThread("stmtflow-nats-sink", reset=self._forget)
        self._nc: Any = None
        self._js: Any = None

    def _forget(self) -> None:
        self._nc, self._js = None, None

    async def _jetstream(self) -> Any:
        if self._js is None:
            try:
                import nats
                import nats.js.errors
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError("NatsSink needs nats-py: pip install 'stmtflow[nats]'") from exc
            nc = await nats.connect(
                servers=[self.url], name="stmtflow-sink", connect_timeout=self.timeout
            )
            js = nc.jetstream(timeout=self.timeout)
            if self.stream is not None:
                try:
                    await js.stream_info(self.stream)
                except nats.js.errors.NotFoundError:
                    await js.add_stream(name=self.stream, subjects=[self.subject])
            self._nc, self._js = nc, js
        return self._js

    async def _publish(self, message: OutboxMessage) -> None:
        js = await self._jetstream()
        headers = {
            "Nats-Msg-Id": message.key,
            "Stmtflow-Topic": message.topic,
            "Stmtflow-Instance": message.instance_id,
            "Stmtflow-Thread": message.thread_id,
            "Stmtflow-Step": message.step,
        }
        await js.publish(self.subject, message.payload.encode(), headers=headers)

    def __call__(self, message: OutboxMessage) -> None:
        self._loop.run(
            lambda: self._publish(message),
            timeout=self.timeout * 2,
            what=f"publishing outbox message {message.key!r} to {self.name}",
        )

    def close(self) -> None:
        """Drain the connection and stop the sink's event loop thread."""

        async def drain() -> None:
            if self._nc is not None:
                await self._nc.close()
            self._forget()

        self._loop.stop(drain)


def sink_from_url(url: str) -> RedisStreamSink | NatsSink:
    """The sink a URL names (the CLI's ``--sink``):

    - ``redis://host:6379/0?stream=NAME`` (or ``rediss://``): a `RedisStreamSink`, with
      ``maxlen=N`` optionally;
    - ``nats://host:4222?subject=SUBJECT``: a `NatsSink`, with ``stream=NAME`` (created for the
      subject if missing) and ``timeout=SECONDS`` optionally.

    Raises:
        ValueError: another scheme, a missing ``stream`` / ``subject``, or an unknown parameter,
            naming the URL.

    Example:
        >>> sink_from_url("redis://127.0.0.1:6379/0?stream=orders").stream
        'orders'
        >>> sink_from_url("nats://127.0.0.1:4222?subject=orders.events&stream=ORDERS").subject
        'orders.events'
    """
    shown = redact(url)
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    scheme = parts.scheme.lower()
    rest = urlunsplit(parts._replace(query=""))

    def take(name: str, *, required: bool = False) -> str | None:
        value = params.pop(name, None)
        if required and not value:
            raise ValueError(f"sink URL {shown!r}: give the {name}= parameter")
        return value

    sink: RedisStreamSink | NatsSink
    if scheme in ("redis", "rediss"):
        stream = take("stream", required=True)
        maxlen = take("maxlen")
        assert stream is not None
        sink = RedisStreamSink(rest, stream, maxlen=None if maxlen is None else int(maxlen))
    elif scheme == "nats":
        subject = take("subject", required=True)
        timeout = take("timeout")
        assert subject is not None
        sink = NatsSink(
            rest,
            subject,
            stream=take("stream"),
            timeout=10.0 if timeout is None else float(timeout),
        )
    else:
        raise ValueError(
            f"unsupported sink URL {shown!r} (supported: redis://host:6379/0?stream=NAME, "
            "nats://host:4222?subject=SUBJECT[&stream=NAME])"
        )
    if params:
        raise ValueError(f"sink URL {shown!r}: unknown parameter(s) {', '.join(sorted(params))}")
    return sink

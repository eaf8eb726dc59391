"""The outbox's broker sinks against the real servers: a Redis stream (127.0.0.1:6379) and a NATS
JetStream subject (127.0.0.1:4222). A deliverer that dies between the broker taking a message
and the outbox forgetting it sends it again: JetStream drops the copy by its ``Nats-Msg-Id``,
a Redis stream keeps both, with the same ``key`` for consumers to deduplicate by. The deliverer's
outbox is a SQLite file, or the Redis store (its outbox rows in the same server as the stream)."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import stmtflow as sf
from stmtflow.stores.base import utcnow


class Paid(sf.WorkflowState):
    amount: int = 5

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("charge", self.charge))

    def charge(self) -> None:
        sf.emit("orders.paid", {"amount": self.amount})


def _crash_after_send(store: str, sink: str) -> None:
    """Run, in a process of its own, an engine whose sink sends and then the process dies."""
    script = textwrap.dedent(
        f"""
        import os, stmtflow as sf
        from tests.test_outbox_sinks import Paid
        real = {sink}
        def dies_after_sending(message):
            real(message)
            os._exit(3)  # the broker has the message; the outbox still holds it
        engine = sf.Engine({store!r}, [Paid], sinks=[dies_after_sending])
        engine.start(Paid, id="p-1")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent)
    assert done.returncode == 3


def _after_the_claim(store: str, sink: Any) -> sf.Engine:
    """An engine on the same store whose clock is past the dead deliverer's claim."""
    return sf.Engine(store, [Paid], sinks=[sink], clock=lambda: utcnow() + timedelta(seconds=31))


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def outbox_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of the store the crashing deliverer keeps its outbox in."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"sqlite:///{tmp_path / 'crash.db'}"


# -- Redis ---------------------------------------------------------------------------------------


@pytest.fixture
def stream(redis_server: str) -> Iterator[tuple[str, str]]:
    import redis

    name = f"stmtflow-test-outbox-{secrets.token_hex(4)}"
    yield redis_server, name
    with redis.Redis.from_url(redis_server) as client:
        client.delete(name)


def _entries(url: str, name: str) -> list[dict[str, str]]:
    import redis

    with redis.Redis.from_url(url, decode_responses=True) as client:
        return [fields for _, fields in client.xrange(name)]


@pytest.mark.redis
def test_redis_stream_sink_appends_each_message(stream: tuple[str, str]) -> None:
    url, name = stream
    with sf.Engine("memory://", [Paid], sinks=[sf.RedisStreamSink(url, name)]) as engine:
        engine.start(Paid, {"amount": 9}, id="r-1")
        assert engine.outbox_messages() == []
    assert _entries(url, name) == [
        {
            "key": "r-1/_main_/charge/1/0",
            "topic": "orders.paid",
            "payload": '{"amount":9}',
            "instance": "r-1",
            "thread": "_main_",
            "step": "charge",
        }
    ]


@pytest.mark.redis
@pytest.mark.slow  # a process of its own, killed
def test_redis_crash_between_send_and_mark_sent_is_at_least_once(
    stream: tuple[str, str], outbox_store: str
) -> None:
    url, name = stream
    db = outbox_store
    _crash_after_send(db, f"sf.RedisStreamSink({url!r}, {name!r})")
    assert len(_entries(url, name)) == 1
    with _after_the_claim(db, sf.RedisStreamSink(url, name)) as engine:
        assert engine.deliver_outbox() == 1
        assert engine.outbox_messages() == []
    entries = _entries(url, name)
    assert len(entries) == 2  # at least once: the stream keeps the copy ...
    assert {e["key"] for e in entries} == {"p-1/_main_/charge/1/0"}  # ... with the same key


@pytest.mark.redis
def test_an_unreachable_redis_is_a_recorded_failure() -> None:
    sink = sf.RedisStreamSink("redis://127.0.0.1:1/0", "nowhere")
    with sf.Engine("memory://", [Paid], sinks=[sink]) as engine:
        engine.start(Paid, id="r-2")
        [failed] = engine.outbox_failures()
    assert failed.attempts == 1
    assert failed.last_error is not None
    assert failed.last_error.startswith("redis stream nowhere at redis://127.0.0.1:1/0: ")


# -- NATS JetStream ------------------------------------------------------------------------------


@pytest.fixture
def subject(nats_server: str) -> Iterator[tuple[str, str, str]]:
    token = secrets.token_hex(4)
    names = (nats_server, f"stmtflow.test.outbox.{token}", f"STMTFLOW_TEST_OUTBOX_{token}")
    yield names
    asyncio.run(_drop_stream(nats_server, names[2]))


async def _drop_stream(url: str, stream: str) -> None:
    import nats
    import nats.js.errors

    nc = await nats.connect(servers=[url])
    try:
        await nc.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


async def _stored(url: str, stream: str, subject: str) -> list[tuple[str, bytes]]:
    """Every message of the stream: (its Nats-Msg-Id, its body)."""
    import nats

    nc = await nats.connect(servers=[url])
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            found.append(((msg.headers or {}).get("Nats-Msg-Id", ""), msg.data or b""))
        assert info.state.messages == len(found)
        return found
    finally:
        await nc.close()


@pytest.mark.nats
def test_nats_sink_publishes_with_the_key_as_msg_id(subject: tuple[str, str, str]) -> None:
    url, subj, stream = subject
    with sf.Engine("memory://", [Paid], sinks=[sf.NatsSink(url, subj, stream=stream)]) as engine:
        engine.start(Paid, {"amount": 4}, id="n-1")
        assert engine.outbox_messages() == []
    assert asyncio.run(_stored(url, stream, subj)) == [("n-1/_main_/charge/1/0", b'{"amount":4}')]


@pytest.mark.nats
@pytest.mark.slow  # a process of its own, killed
def test_nats_crash_between_send_and_mark_sent_stores_one_message(
    subject: tuple[str, str, str], outbox_store: str
) -> None:
    url, subj, stream = subject
    db = outbox_store
    _crash_after_send(db, f"sf.NatsSink({url!r}, {subj!r}, stream={stream!r})")
    with _after_the_claim(db, sf.NatsSink(url, subj, stream=stream)) as engine:
        [left] = engine.outbox_messages()  # the dead deliverer never marked it sent
        assert left.key == "p-1/_main_/charge/1/0"
        assert engine.deliver_outbox() == 1  # sent again ...
        assert engine.outbox_messages() == []
    # ... and JetStream dropped the copy: one message in the stream.
    assert asyncio.run(_stored(url, stream, subj)) == [("p-1/_main_/charge/1/0", b'{"amount":5}')]


@pytest.mark.nats
def test_a_subject_no_stream_captures_is_a_recorded_failure(nats_server: str) -> None:
    sink = sf.NatsSink(nats_server, f"stmtflow.test.nobody.{secrets.token_hex(4)}", timeout=2)
    with sf.Engine("memory://", [Paid], sinks=[sink]) as engine:
        engine.start(Paid, id="n-2")
        [failed] = engine.outbox_failures()
    assert failed.last_error is not None and failed.last_error.startswith("nats subject")

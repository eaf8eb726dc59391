"""``stmtflow --sink URL``: the CLI's engine delivers what steps emit to a Redis stream or a NATS
subject; a bad sink URL is one error line and exit code 2."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from stmtflow.cli import cli
from stmtflow.runtime._sinks import NatsSink, RedisStreamSink, sink_from_url

EMITTER = """
import stmtflow as sf

class Tell(sf.WorkflowState):
    what: str = "hello"

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("tell", lambda: sf.emit("news", {"what": self.what})))
"""


@pytest.fixture
def stream(redis_server: str) -> Iterator[tuple[str, str]]:
    import redis

    name = f"stmtflow-test-cli-{secrets.token_hex(4)}"
    yield redis_server, name
    with redis.Redis.from_url(redis_server) as client:
        client.delete(name)


def _entries(url: str, name: str) -> list[dict[str, str]]:
    import redis

    with redis.Redis.from_url(url, decode_responses=True) as client:
        return [fields for _, fields in client.xrange(name)]


@pytest.mark.redis
def test_run_with_a_sink_delivers_and_a_worker_delivers_what_was_left(
    stream: tuple[str, str], tmp_path: Path
) -> None:
    url, name = stream
    flow = tmp_path / "tell.py"
    flow.write_text(EMITTER)
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    sink = f"{url}{'&' if '?' in url else '?'}stream={name}"
    runner = CliRunner()
    done = runner.invoke(cli, ["--db", db, "--sink", sink, "run", f"{flow}:Tell", "--id", "t-1"])
    assert done.exit_code == 0, done.output
    assert [e["key"] for e in _entries(url, name)] == ["t-1/_main_/tell/1/0"]
    # Without --sink the message waits in the outbox; a worker with one delivers it.
    args = ["--db", db, "run", f"{flow}:Tell", "--id", "t-2", "--input", '{"what": "later"}']
    assert runner.invoke(cli, args).exit_code == 0
    assert len(_entries(url, name)) == 1
    done = runner.invoke(cli, ["--db", db, "--sink", sink, "worker", "--once"])
    assert done.exit_code == 0, done.output
    assert [e["payload"] for e in _entries(url, name)] == ['{"what":"hello"}', '{"what":"later"}']


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com", "unsupported sink URL"),
        ("redis://127.0.0.1:6379/0", "give the stream= parameter"),
        ("nats://127.0.0.1:4222?stream=S", "give the subject= parameter"),
        ("redis://127.0.0.1:6379/0?stream=s&colour=red", "unknown parameter(s) colour"),
    ],
)
def test_a_bad_sink_url_is_one_error_line(url: str, why: str, tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["--db", "memory://", "--sink", url, "list"])
    assert done.exit_code == 2
    assert why in done.stderr
    assert "Traceback" not in done.stderr


def test_sink_urls() -> None:
    redis_sink = sink_from_url("redis://:secret@127.0.0.1:6379/1?stream=orders&maxlen=1000")
    assert isinstance(redis_sink, RedisStreamSink)
    assert (redis_sink.url, redis_sink.stream, redis_sink.maxlen) == (
        "redis://:secret@127.0.0.1:6379/1",
        "orders",
        1000,
    )
    assert "secret" not in redis_sink.name
    nats_sink = sink_from_url("nats://127.0.0.1:4222?subject=a.b&stream=AB&timeout=2.5")
    assert isinstance(nats_sink, NatsSink)
    assert (nats_sink.url, nats_sink.subject, nats_sink.stream, nats_sink.timeout) == (
        "nats://127.0.0.1:4222",
        "a.b",
        "AB",
        2.5,
    )

"""A step that publishes to a Redis stream, exactly when its checkpoint commits: the outbox.

Each `Invoice` is issued in a step that calls ``sf.emit("invoices.issued", {...})``; the engine
stores the message in the same SQLite commit as the step's progress, then appends it to the
Redis stream ``example-invoices`` (`sf.RedisStreamSink`). A second invoice's first attempt
fails after emitting: that message is never committed, so the stream never sees it; its retry
emits again, with the same key. The example prints what the stream got.

Needs ``pip install 'stmtflow[redis]'`` and a Redis server. Run it:

    python examples/outbox_redis.py [redis://127.0.0.1:6379/0] [folder]

The stream is deleted when it starts and when it ends; the SQLite file goes in ``folder``
(default a fresh temporary folder).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import stmtflow as sf

STREAM = "example-invoices"


class Invoice(sf.WorkflowState):
    customer: str
    amount: int
    flaky: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("issue", self.issue, retry=sf.RetryPolicy(max_attempts=3)),
        )

    def issue(self) -> None:
        key = sf.emit("invoices.issued", {"customer": self.customer, "amount": self.amount})
        if self.flaky and sf.current_step().attempt == 1:
            raise ConnectionError(f"the ledger timed out after emitting {key}")


def main() -> None:
    server = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
    folder = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp())
    cleanup(server)
    now = [datetime.now(UTC)]
    engine = sf.Engine(
        f"sqlite:///{folder / 'invoices.db'}",
        [Invoice],
        sinks=[sf.RedisStreamSink(server, STREAM)],
        clock=lambda: now[0],
    )
    engine.start(Invoice, {"customer": "acme", "amount": 120}, id="inv-1")
    engine.start(Invoice, {"customer": "globex", "amount": 75, "flaky": True}, id="inv-2")
    print(f"inv-2 after its first attempt: {engine.get('inv-2').status.value}")
    now[0] += timedelta(seconds=2)  # its retry is due
    engine.tick()
    print(f"inv-2 after its retry: {engine.get('inv-2').status.value}")
    print(f"left in the outbox: {len(engine.outbox_messages())}")
    print(f"stream {STREAM!r} got:")
    for fields in entries(server):
        print(f"  {fields['key']}  {fields['topic']}  {fields['payload']}")
    engine.close()
    cleanup(server)


def entries(server: str) -> list[dict[str, str]]:
    """What the stream holds, oldest first (a consumer would XREAD or XREADGROUP)."""
    import redis

    with redis.Redis.from_url(server, decode_responses=True) as client:
        return [fields for _, fields in client.xrange(STREAM)]


def cleanup(server: str) -> None:
    import redis

    with redis.Redis.from_url(server) as client:
        client.delete(STREAM)


if __name__ == "__main__":
    main()

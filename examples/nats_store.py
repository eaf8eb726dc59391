"""Workflows kept in NATS JetStream: two workers' view of one bucket, a timer and a callback.

A support ticket waits for the customer's answer for three days, with a reminder after one. Two
engines stand for two worker machines sharing the bucket: one starts the ticket, the other fires
the reminder when it is due and takes the answer. Everything they share is in the bucket.

Needs a NATS server with JetStream (``nats-server -js``) and ``pip install 'stmtflow[nats]'``.
The bucket is the example's own and is deleted at the end.

    python examples/nats_store.py [nats://127.0.0.1:4222]
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta

import stmtflow as sf
from stmtflow.stores.nats import drop


class Ticket(sf.WorkflowState):
    subject: str
    reminded: bool = False
    answer: str | None = None

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go(
                "reminder",
                sf.S(sf.Sleep("a_day", timedelta(days=1)), sf.Step("remind", self.remind)),
            ),
            sf.Wait(
                "customer",
                sf.OnEvent("answer", self.on_answer),
                sf.On("no_answer", sf.Timer(days=3)),
            ),
        )

    def remind(self) -> None:
        self.reminded = True
        print(f"  reminder sent for {self.subject!r}")

    def on_answer(self, text: str) -> str:
        self.answer = text
        return "thanks"


def main() -> None:
    server = sys.argv[1] if len(sys.argv) > 1 and "://" in sys.argv[1] else "nats://127.0.0.1:4222"
    url = f"{server}?bucket=stmtflow_example_{os.getpid()}"
    try:
        front = sf.Engine(url, workflows=[Ticket])  # the machine that takes requests
        worker = sf.Engine(url, workflows=[Ticket])  # a worker machine
        inst = front.start(Ticket, {"subject": "printer on fire"}, id="ticket-1")
        print(f"started: {inst.status.value}, next wake-up {inst.wake_at:%Y-%m-%d}")
        print(f"due now: {worker.store.count_due(datetime.now(UTC))}")
        tomorrow = datetime.now(UTC) + timedelta(days=1, minutes=1)
        print(f"fired a day later: {worker.tick(tomorrow)}")
        print(f"customer: {worker.send('ticket-1', 'answer', 'it was the toner')!r}")
        done = front.get("ticket-1")
        print(
            f"finished: {done.status.value}, reminded {done.data.reminded}, "  # type: ignore[attr-defined]
            f"answer {done.data.answer!r}"
        )  # type: ignore[attr-defined]
        print(f"listed as finished: {[r.id for r in front.store.list(status='finished')]}")
        front.close()
        worker.close()
    finally:
        drop(url)


if __name__ == "__main__":
    main()

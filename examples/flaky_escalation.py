"""A flaky integration that keeps failing: after its retries the step goes to an operator.

What it shows:

- ``RetryPolicy(..., on_exhausted="escalate")``: a step whose attempts ran out does not fail
  the workflow; its thread waits at the step on the event ``"{step}.escalation"``;
- the operator's queue is ``engine.inputs()`` (``stmtflow inputs`` from a shell): each
  escalated step with the error that stopped it, and the answer it takes;
- why it waits stays on the instance: ``engine.get(id).error`` names the step, its attempts and
  the last error (``stmtflow show ID`` prints them);
- the operator answers ``{"action": "retry"}`` (run the step again with fresh attempts, here
  after the outage is over), ``{"action": "skip"}`` (move on as if it had succeeded) or
  ``{"action": "fail"}`` (fail the workflow); anything else is refused, changing nothing.

Run it with

    python examples/flaky_escalation.py [FOLDER]

(the SQLite file goes to FOLDER, default a fresh temporary folder). Three invoices meet a
ledger that is down: the operator retries the first once it is back, skips the second (booked
by hand meanwhile) and fails the third. From a shell the answers would be
``stmtflow send inv-1 book.escalation '{"action": "retry"}'``.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import stmtflow as sf


class Ledger:
    """The outside system: down until someone fixes it. Its calls are kept outside the
    workflow data (a failed step's changes to the data are rolled back)."""

    up = False
    calls: list[str] = []

    @classmethod
    def book(cls, invoice: str, amount: int) -> str:
        cls.calls.append(invoice)
        if not cls.up:
            raise ConnectionError("ledger.example.com: 503 Service Unavailable")
        return f"L-{invoice}-{amount}"


class Invoice(sf.WorkflowState):
    number: str
    amount: int
    entry: str = ""
    history: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step(
                "book",
                self.book,
                retry=sf.RetryPolicy(
                    max_attempts=3,
                    initial_interval=timedelta(minutes=1),
                    on_exhausted="escalate",
                ),
            ),
            sf.Step("send", self.send),
        )

    def book(self) -> None:
        self.entry = Ledger.book(self.number, self.amount)
        self.history.append(f"booked as {self.entry}")

    def send(self) -> None:
        self.history.append(f"sent invoice {self.number} ({self.amount} EUR)")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def queue(engine: sf.Engine) -> None:
    rows = engine.inputs()
    print(f"  operator's queue: {len(rows)}")
    for row in rows:
        print(f"    - {row.instance_id} {row.event}: {row.prompt}")


def main(folder: Path) -> None:
    clock = Clock()
    url = f"sqlite:///{folder / 'invoices.db'}"
    print(f"store: {url}\n")
    with sf.Engine(url, workflows=[Invoice], clock=clock) as engine:
        ids = ["inv-1", "inv-2", "inv-3"]
        for n, id in enumerate(ids):
            engine.start(Invoice, {"number": id, "amount": 100 * (n + 1)}, id=id)
        print("the ledger is down; the retries run every minute or two:")
        for _ in range(3):
            clock.now += timedelta(minutes=2)
            engine.tick()
        print(f"  ledger calls: {len(Ledger.calls)} (3 attempts x 3 invoices)")
        print(f"  inv-1 is {engine.get('inv-1').status.value}: {engine.get('inv-1').error}")
        queue(engine)

        print("\nthe operator types an unknown action:")
        try:
            engine.send("inv-1", "book.escalation", {"action": "retry tomorrow"})
        except sf.CallbackInputError as refused:
            print(f"  refused: {refused.problems[0]}")

        print("\nthe ledger is back; the operator retries inv-1, skips inv-2, fails inv-3:")
        Ledger.up = True
        engine.send("inv-1", "book.escalation", {"action": "retry"})
        engine.send("inv-2", "book.escalation", {"action": "skip"})
        engine.send("inv-3", "book.escalation", {"action": "fail"})
        queue(engine)

        print("\nWhat happened:")
        for id in ids:
            inst = engine.get(id)
            print(f"  {id} ({inst.status.value}):")
            for line in inst.data.history:  # type: ignore[attr-defined]
                print(f"    - {line}")
            if inst.status is sf.WorkflowStatus.FAILED:
                print(f"    - failed: {inst.error}")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="flaky-"))
    target.mkdir(parents=True, exist_ok=True)
    main(target)

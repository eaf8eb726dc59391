"""An order calls a payment workflow and waits for its result, at most 15 minutes.

``Order`` reserves the goods, then ``Call``s a ``Payment`` child and waits for it. The payment
asks the bank and waits for the bank's answer (an event sent to the *child*). Order 1's bank
answers: the child finishes, its ``result()`` reaches the order as a ``ChildResult`` and the
order ships. Order 2's bank never answers: after 15 minutes the order's timeout fires, the
payment child is cancelled, the order receives a ``timed_out`` result and releases the goods.

Run it (an SQLite file in a fresh temporary folder, or in the folder given):

    python examples/order_payment.py [FOLDER] [STORE_URL]

Each instance's state is written to the folder as ``<id>.state.json``. Children work the same on
every store: give a ``STORE_URL`` (``redis://127.0.0.1:6379/0?prefix=orders``,
``nats://127.0.0.1:4222?bucket=orders``, ``postgresql://...``) to keep the instances there
instead (an empty one: the ids are fixed).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import stmtflow as sf


class Payment(sf.WorkflowState):
    """Ask the bank, wait for its answer; the parent sees ``result()``."""

    order: str
    amount: int
    approved: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("ask_bank", self.ask_bank),
            sf.Wait("bank", sf.OnEvent("bank_answer", self.answer)),
        )

    def ask_bank(self) -> None:
        print(f"  [payment] asked the bank to charge {self.amount} for {self.order}")

    def answer(self, approved: bool) -> None:
        self.approved = approved

    def result(self) -> dict[str, object]:
        return {"approved": self.approved}


class Order(sf.WorkflowState):
    item: str
    amount: int
    outcome: str = ""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", self.reserve),
            sf.Call(
                "pay",
                Payment,
                lambda: {"order": self.item, "amount": self.amount},
                result=self.paid,
                timeout=timedelta(minutes=15),
            ),
            sf.If(lambda: self.outcome == "paid", sf.Step("ship", self.ship)).Else(
                sf.Step("release", self.release)
            ),
        )

    def reserve(self) -> None:
        print(f"  reserved the {self.item}")

    def paid(self, result: sf.ChildResult) -> None:
        approved = result.ok and bool(result.output and result.output["approved"])
        self.outcome = "paid" if approved else result.status
        print(f"  payment {result.id} ended {result.status}: {result.output or result.error}")

    def ship(self) -> None:
        print(f"  shipped the {self.item}")

    def release(self) -> None:
        print(f"  released the {self.item} ({self.outcome})")


class Clock:
    """The engine's clock, moved by hand so the example needs no waiting."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def main(folder: Path, url: str | None = None) -> None:
    clock = Clock()
    engine = sf.Engine(url or f"sqlite:///{folder / 'orders.db'}", [Order, Payment], clock=clock)

    print("order-1: the bank answers")
    engine.start(Order, {"item": "teapot", "amount": 30}, id="order-1")
    [payment] = engine.children("order-1")
    print(f"  order-1 waits for {payment.id} ({payment.status.value})")
    engine.send(payment.id, "bank_answer", True)
    print(f"  order-1 is {engine.get('order-1').status.value}")

    print("order-2: the bank never answers")
    engine.start(Order, {"item": "kettle", "amount": 45}, id="order-2")
    clock.now += timedelta(minutes=16)
    engine.tick()  # what a worker does: the timeout is due
    [payment] = engine.children("order-2")
    print(
        f"  {payment.id} is {payment.status.value}; order-2 is {engine.get('order-2').status.value}"
    )

    for inst in engine.list():
        (folder / f"{inst.id.replace('/', '_')}.state.json").write_text(
            inst.state.model_dump_json(indent=2)
        )
    engine.close()


if __name__ == "__main__":
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()),
        sys.argv[2] if len(sys.argv) > 2 else None,
    )

"""An order that waits for payment, nags the customer meanwhile, and ships or gives up.

What it shows:

- a ``Step`` that reserves stock, then a ``Go`` thread sending reminders every 6 hours (a
  ``Sleep`` inside a ``For``) while the main thread waits;
- a ``Wait`` on two events: ``paid`` (an ``OnEvent`` with a typed pydantic input) or ``timeout``
  (a ``Timer``), whichever comes first;
- an ``If`` / ``Else`` on what happened;
- driving it by hand the way a service does: every request loads the JSON from disk, calls
  ``handle_callback`` and/or ``resume``, and saves the JSON at every checkpoint. Nothing lives in
  memory between requests, so each request is a restart.

Two orders run: one is paid after a reminder, the other times out. Run it with

    python examples/order.py [FOLDER]

(the JSON files go to FOLDER, default a fresh temporary folder; look at them afterwards).
The runtime (``stmtflow.Engine``) does all of this for you on SQLite or PostgreSQL; this file
shows what happens underneath, with nothing but the core library and a folder of JSON.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import stmtflow as sf


class Payment(BaseModel):
    """What the payment provider's webhook sends."""

    amount: int
    method: str


class Order(sf.WorkflowState):
    """An order's durable data; ``definition()`` is what it does."""

    item: str
    price: int
    paid: bool = False
    reminders: int = 0
    history: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", self.reserve),
            sf.Go(
                "reminders",
                sf.S(
                    sf.For(
                        "remind_loop",
                        lambda: not self.paid and self.reminders < 3,
                        sf.Sleep("remind_pause", timedelta(hours=6)),
                        sf.Step("remind", self.remind),
                    )
                ),
            ),
            sf.Wait(
                "payment",
                sf.OnEvent("paid", self.on_paid),
                sf.On("timeout", sf.Timer(hours=24)),
            ),
            sf.If(self.paid, sf.Step("ship", self.ship)).Else(sf.Step("release", self.release)),
        )

    # Steps: plain methods that change the data (and, in real life, call other services).

    def reserve(self) -> None:
        self.history.append(f"reserved one {self.item}")

    def remind(self) -> None:
        if self.paid:  # paid while this thread slept
            return
        self.reminders += 1
        self.history.append(f"sent payment reminder #{self.reminders}")

    def on_paid(self, payment: Payment) -> str:
        if payment.amount < self.price:
            raise ValueError(f"{payment.amount} is less than the price {self.price}")
        self.paid = True
        self.history.append(f"paid {payment.amount} by {payment.method}")
        return "thank you"

    def ship(self) -> None:
        self.history.append(f"shipped the {self.item}")

    def release(self) -> None:
        self.history.append(f"no payment in time: released the {self.item}")


def due_timers(state: sf.State, now: datetime) -> list[sf.CallbackRequest]:
    """The armed timers whose deadline has passed, earliest first: what a worker delivers.

    A timer's setup recorded its deadline on the armed event, where ``sf.Timer.deadline`` reads
    it. The event's request names the thread and the ``pc`` the wait armed it with, so
    delivering it can never fire a later wait's timer by mistake.
    """
    due: list[tuple[datetime, sf.CallbackRequest]] = []
    for thread in state.threads:
        if thread.status != sf.ThreadStatus.WAITING_EVENT or thread.cur_callback is not None:
            continue  # not waiting on events, or one of its events fired already
        for event in thread.wait_events:
            deadline = sf.Timer.deadline(event.req) if event.type == sf.Timer.type else None
            if deadline is not None and deadline <= now:
                due.append((deadline, event.req.model_copy()))
    due.sort(key=lambda pair: pair[0])
    return [req for _, req in due]


class Folder:
    """Stores each workflow as two JSON files: its data and its execution state."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, wf: Order, state: sf.State) -> None:
        (self.path / f"{state.id}.data.json").write_text(wf.model_dump_json(indent=2))
        (self.path / f"{state.id}.state.json").write_text(state.model_dump_json(indent=2))

    def load(self, order_id: str) -> tuple[Order, sf.State]:
        data = (self.path / f"{order_id}.data.json").read_text()
        state = (self.path / f"{order_id}.state.json").read_text()
        return Order.model_validate_json(data), sf.load_state(state)

    # -- what a service does per request ------------------------------------------------------

    def start(self, order_id: str, item: str, price: int, now: datetime) -> None:
        wf, state = Order(item=item, price=price), sf.new_state(order_id, Order)
        self.resume(wf, state, now)

    def resume(self, wf: Order, state: sf.State, now: datetime) -> None:
        sf.resume(wf, state, lambda kind: self.save(wf, state), now=now)
        self.save(wf, state)

    def send(self, order_id: str, event: str, payload: Any, now: datetime) -> None:
        wf, state = self.load(order_id)
        try:
            answer = sf.handle_callback(event, wf, state, payload, now=now)
        except sf.CallbackError as refused:  # nothing changed: nothing to save
            print(f"  {order_id}: {event!r} refused: {type(refused).__name__}: {refused}")
            return
        print(f"  {order_id}: {event!r} accepted, handler answered {answer!r}")
        self.save(wf, state)  # persist the delivered event before running anything else
        self.resume(wf, state, now)

    def fire_due_timers(self, order_id: str, now: datetime) -> None:
        """What the runtime's worker does: deliver every timer whose deadline has passed."""
        wf, state = self.load(order_id)
        for request in due_timers(state, now):
            print(f"  {order_id}: timer {request.name!r} is due")
            sf.handle_callback(request, wf, state, None, now=now)
            self.save(wf, state)
            self.resume(wf, state, now)

    def show(self, order_id: str) -> None:
        _, state = self.load(order_id)
        where = ", ".join(f"{t.id} at {t.cur_step!r} ({t.status.value})" for t in state.threads)
        print(f"  {order_id}: {state.status.value}" + (f" -- {where}" if where else ""))


def main(folder: Path) -> None:
    store = Folder(folder)
    clock = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    print(f"JSON files in {folder}\n")

    print("09:00 two orders come in")
    store.start("order-1", "teapot", 30, clock)
    store.start("order-2", "kettle", 45, clock)
    store.show("order-1")
    store.show("order-2")

    clock += timedelta(hours=6)
    print("15:00 the reminder timers are due")
    for order_id in ("order-1", "order-2"):
        store.fire_due_timers(order_id, clock)

    print("15:30 order-1 is paid: first too little, then a bad webhook, then properly")
    clock += timedelta(minutes=30)
    store.send("order-1", "paid", {"amount": 20, "method": "card"}, clock)
    store.send("order-1", "paid", {"amount": "thirty"}, clock)
    store.send("order-1", "paid", {"amount": 30, "method": "card"}, clock)
    store.send("order-1", "paid", {"amount": 30, "method": "card"}, clock)  # a duplicate

    print("next day, 09:00: order-2's payment timer is due")
    clock += timedelta(hours=17, minutes=30)
    store.fire_due_timers("order-2", clock)

    print("\nWhat happened:")
    for order_id in ("order-1", "order-2"):
        wf, state = store.load(order_id)
        print(f"  {order_id} ({state.status.value}):")
        for line in wf.history:
            print(f"    - {line}")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="order-"))
    target.mkdir(parents=True, exist_ok=True)
    main(target)

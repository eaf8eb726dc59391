"""Operating an order workflow: its history, a rewind past a bad step, a fork, and pruning.

An order reserves stock, charges the card (the first attempt is declined, the retry goes
through), waits for the warehouse to confirm, then ships. On a SQLite file:

1. ``order-1`` runs; its history (``engine.history``) shows every step with its attempt and
   error, the event that came in, and how it ended — each event committed with the progress it
   records.
2. The warehouse confirmed the wrong parcel: ``engine.rewind`` puts ``order-1`` back as it stood
   right after the charge, before the confirmation, and the right confirmation is sent.
3. ``engine.fork`` starts ``order-1-copy`` from the same point, leaving ``order-1`` as it is.
4. ``engine.stuck`` finds nothing stuck, and ``engine.prune`` deletes the ended orders with
   their history; a waiting one stays.

Run it (the SQLite file goes into the folder given, or a fresh temporary one), then look at the
same history from the command line:

    python examples/operations_history.py [FOLDER]
    stmtflow --db sqlite:///FOLDER/orders.db history order-2

The same runs on any store that keeps histories: give its URL after the folder, e.g.
``python examples/operations_history.py /tmp/x "redis://127.0.0.1:6379/0?prefix=orders"`` or
``... "nats://127.0.0.1:4222?bucket=orders"`` (a prefix or bucket of its own: the example
expects to find only its orders).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import stmtflow as sf


class Order(sf.WorkflowState):
    item: str = "teapot"
    parcel: str = ""
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", self.reserve),
            sf.Step("charge", self.charge, retry=sf.RetryPolicy(initial_interval=timedelta(0))),
            sf.Wait("packed", sf.OnEvent("confirmed", self.confirmed)),
            sf.Step("ship", self.ship),
        )

    def reserve(self) -> None:
        self.log.append(f"reserved the {self.item}")

    def charge(self) -> None:
        if sf.current_step().attempt == 1:
            raise RuntimeError("card declined (try again)")
        self.log.append("charged")

    def confirmed(self, parcel: str) -> None:
        self.parcel = parcel

    def ship(self) -> None:
        self.log.append(f"shipped parcel {self.parcel}")


def show_history(engine: sf.Engine, id: str) -> None:
    events = engine.history(id)
    start = events[0].at
    print(f"history of {id} ({len(events)} events):")
    for e in events:
        attempt = f" attempt {e.attempt}" if e.attempt else ""
        error = f" - {e.error}" if e.error else ""
        name = f" {e.name}" if e.name else ""
        elapsed = (e.at - start).total_seconds()
        print(f"  {e.seq:>2} +{elapsed:.3f}s {e.kind}{name}{attempt}{error}")


def main(folder: Path, url: str | None = None) -> None:
    engine = sf.Engine(url or f"sqlite:///{folder / 'orders.db'}", workflows=[Order])
    engine.register(Order, target=f"{Path(__file__).resolve()}:Order")

    engine.start(Order, id="order-1")
    engine.send("order-1", "confirmed", "P-WRONG")
    print("order-1:", engine.get("order-1").data.log)  # type: ignore[attr-defined]
    show_history(engine, "order-1")

    # Back to right after the charge: the confirmation and the shipment are undone in the data.
    charged = [e.seq for e in engine.history("order-1") if e.name == "charge"][-1]
    engine.rewind("order-1", to=charged)
    print(f"rewound order-1 to event {charged}:", engine.get("order-1").status.value)
    engine.send("order-1", "confirmed", "P-42")
    print("order-1 after the rewind:", engine.get("order-1").data.log)  # type: ignore[attr-defined]

    copy = engine.fork("order-1", to=charged, new_id="order-1-copy")
    print(
        f"forked {copy.id}: {copy.status.value}, waits for",
        [p.name for p in engine.pending(copy.id)],
    )

    engine.start(Order, id="order-2")  # waits for its confirmation
    print("stuck:", engine.stuck() or "nothing")
    pruned = engine.prune(older_than=timedelta(0))
    print(f"pruned {pruned} ended order(s); left:", [i.id for i in engine.list()])


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="orders-"))
    target.mkdir(parents=True, exist_ok=True)
    main(target, sys.argv[2] if len(sys.argv) > 2 else None)

"""A Step Functions order machine (Amazon States Language) run by stmtflow on SQLite.

The state machine is plain ASL JSON, as it would be deployed to AWS; `stmtflow.asl.load`
turns it into a workflow class and each Task's ``Resource`` names a Python function here:

- ``Check order`` (Choice) refuses an order without items;
- ``Reserve items`` (Map, two items at a time) reserves each line of the order; the warehouse
  is sometimes busy, which its Retry waits out (2 s, then 4 s: durable back-off timers);
- a Catch on the Map takes ``OutOfStock``: the order goes to ``Refuse`` and fails;
- ``Charge`` bills the total, ``Hold`` waits an hour (a durable timer), ``Ship`` ships.

Three orders run on a SQLite file; the engine's clock is moved by hand so the retries and the
hour pass at once (a ``stmtflow worker`` would fire them on time):

- ``order-1`` goes through: reserved, charged, held, shipped;
- ``order-2`` asks for something out of stock: the Catch refuses it, the instance fails;
- ``order-3`` meets a busy warehouse twice: the retries reserve it, and it ships.

Run it (the SQLite file goes into the folder given, or a fresh temporary one):

    python examples/asl_order.py [FOLDER]
    stmtflow --db sqlite:///FOLDER/orders.db show order-2
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import stmtflow as sf
from stmtflow import asl

ORDER_MACHINE = {
    "Comment": "Reserve every line, charge, hold an hour, ship",
    "StartAt": "Check order",
    "States": {
        "Check order": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.items", "IsPresent": True},
                        {"Variable": "$.items[0]", "IsPresent": True},
                    ],
                    "Next": "Reserve items",
                }
            ],
            "Default": "Refuse",
        },
        "Reserve items": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemSelector": {
                "order.$": "$.id",
                "line.$": "$$.Map.Item.Index",
                "sku.$": "$$.Map.Item.Value.sku",
                "qty.$": "$$.Map.Item.Value.qty",
            },
            "ItemProcessor": {
                "StartAt": "Reserve",
                "States": {
                    "Reserve": {
                        "Type": "Task",
                        "Resource": "warehouse:reserve",
                        "Retry": [
                            {
                                "ErrorEquals": ["WarehouseBusy"],
                                "IntervalSeconds": 2,
                                "MaxAttempts": 3,
                            }
                        ],
                        "End": True,
                    }
                },
            },
            "ResultSelector": {"reserved.$": "$[*].sku", "total.$": "$[*].price"},
            "ResultPath": "$.reservation",
            "Catch": [{"ErrorEquals": ["OutOfStock"], "ResultPath": "$.problem", "Next": "Refuse"}],
            "Next": "Charge",
        },
        "Charge": {
            "Type": "Task",
            "Resource": "billing:charge",
            "Parameters": {"order.$": "$.id", "prices.$": "$.reservation.total"},
            "ResultPath": "$.payment",
            "Next": "Hold",
        },
        "Hold": {"Type": "Wait", "Seconds": 3600, "Next": "Ship"},
        "Ship": {
            "Type": "Task",
            "Resource": "shipping:ship",
            "Parameters": {"order.$": "$.id", "skus.$": "$.reservation.reserved"},
            "ResultPath": "$.shipment",
            "End": True,
        },
        "Refuse": {
            "Type": "Fail",
            "Error": "OrderRefused",
            "CausePath": "States.Format('order {} refused', $.id)",
        },
    },
}

STOCK = {"teapot": (3, 25), "kettle": (5, 40), "cups": (20, 4)}
BUSY = {"order-3": 2}  # the warehouse is busy for the first two calls of order-3


class OutOfStock(Exception):
    """The warehouse has too few of something."""


class WarehouseBusy(Exception):
    """The warehouse cannot take a request right now."""


def reserve(line: dict[str, Any]) -> dict[str, Any]:
    if BUSY.get(line["order"], 0) > 0:
        BUSY[line["order"]] -= 1
        raise WarehouseBusy("try again shortly")
    have, price = STOCK.get(line["sku"], (0, 0))
    if have < line["qty"]:
        raise OutOfStock(f"{line['sku']}: {have} left, {line['qty']} asked")
    STOCK[line["sku"]] = (have - line["qty"], price)
    print(f"  {line['order']}: reserved {line['qty']} x {line['sku']}")
    return {"sku": line["sku"], "price": price * line["qty"]}


def charge(bill: dict[str, Any]) -> dict[str, Any]:
    total = sum(bill["prices"])
    print(f"  {bill['order']}: charged {total}")
    return {"charged": total}


def ship(parcel: dict[str, Any]) -> str:
    print(f"  {parcel['order']}: shipped {', '.join(parcel['skus'])}")
    return "shipped"


RESOURCES = {"warehouse:reserve": reserve, "billing:charge": charge, "shipping:ship": ship}
OrderMachine = asl.load(ORDER_MACHINE, resources=RESOURCES, name="OrderMachine")

ORDERS = {
    "order-1": [{"sku": "teapot", "qty": 1}, {"sku": "cups", "qty": 4}],
    "order-2": [{"sku": "kettle", "qty": 9}],
    "order-3": [{"sku": "kettle", "qty": 1}],
}


class Clock:
    """The engine's clock, moved by hand in this example."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def main(folder: Path) -> None:
    db = folder / "orders.db"
    clock = Clock()
    with sf.Engine(f"sqlite:///{db}", workflows=[OrderMachine], clock=clock) as engine:
        # So that `stmtflow show` and `stmtflow graph` find the class from the stored instances.
        engine.store.set_target("OrderMachine", f"{Path(__file__).resolve()}:OrderMachine")
        for order_id, items in ORDERS.items():
            print(f"{order_id}: started")
            engine.start(OrderMachine, {"input": {"id": order_id, "items": items}}, id=order_id)
        # The retries' back-off (2 s, 4 s) and the hour's hold: move the clock to the next
        # wake-up and fire what is due, until nothing waits.
        while wakes := [i.wake_at for i in engine.list() if i.wake_at is not None]:
            clock.now = max(clock.now, min(wakes))
            engine.tick()
        for order_id in ORDERS:
            inst = engine.get(order_id)
            result = inst.data.result or {}
            if result.get("status") == "SUCCEEDED":
                print(f"{order_id}: {inst.status.value}, {result['output']['shipment']}")
            else:
                print(
                    f"{order_id}: {inst.status.value}, {result.get('error')}: {result.get('cause')}"
                )
    print(f"stored in {db}")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="orders-"))
    target.mkdir(parents=True, exist_ok=True)
    main(target)

"""An expense-approval service: the stmtflow HTTP API and web page over one workflow.

Start it with one command, from the repository root::

    python examples/service/app.py            # then open http://127.0.0.1:8000/ui/

It keeps its instances in ``service.db`` (SQLite) beside where it runs, starts three sample
expenses the first time, and runs a worker in the same process (the reminder timers). Every
expense waits for a manager's decision (a form on the instance's page, or
``POST /instances/<id>/events/decide``) and, once approved, for the payment webhook
(``paid``); a refused expense ends at once. See README.md beside this file.

Options: ``--port 8000``, ``--host 127.0.0.1``, ``--db URL``, ``--token T`` (require a bearer
token), ``--no-samples``.
"""

from __future__ import annotations

import argparse
import threading
from datetime import timedelta
from typing import Literal

import uvicorn
from pydantic import BaseModel, Field

import stmtflow as sf
from stmtflow.http import create_app, sign_callback

SECRET = "change-me"  # the key of signed webhook URLs: take it from your secrets in production


class Decision(BaseModel):
    """What the manager answers."""

    approve: bool = Field(description="tick to approve the expense")
    manager: str = Field(min_length=2, description="who decided (two letters at least)")
    category: Literal["travel", "equipment", "other"] = "other"
    note: str = ""


class Expense(sf.WorkflowState):
    """An expense claim: a manager decides, then finance pays (a webhook), with a reminder."""

    employee: str = "ann"
    amount: float = 0.0
    decision: str = ""
    reminders: int = 0
    payment_url: str = ""
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("submit", self.submit),
            sf.Wait(
                "approval",
                sf.On(
                    "decide",
                    sf.HumanInput(
                        Decision,
                        prompt=f"approve {self.employee}'s expense of {self.amount:.2f}?",
                        assignee="managers",
                        fn=self.decided,
                    ),
                ),
                sf.On("remind", sf.Timer(days=2), sf.Step("remind_manager", self.remind)),
            ),
            sf.If(
                lambda: self.decision == "approved",
                sf.Step("request_payment", self.request_payment),
                sf.Wait("payment", sf.OnEvent("paid", self.paid)),
            ),
        )

    def submit(self) -> None:
        self.log.append(f"{self.employee} submitted {self.amount:.2f}")

    def decided(self, decision: Decision) -> None:
        self.decision = "approved" if decision.approve else "refused"
        self.log.append(f"{decision.manager} {self.decision} it ({decision.category})")

    def remind(self) -> None:
        self.reminders += 1
        self.log.append("reminded the managers")

    def request_payment(self) -> None:
        # A real service would hand this URL to the payment provider as its webhook.
        step = sf.current_step()
        self.payment_url = sign_callback(SECRET, step.workflow_id, "paid", expires=timedelta(30))
        self.log.append("asked finance to pay")

    def paid(self, reference: str) -> None:
        self.log.append(f"paid, reference {reference}")


SAMPLES = [
    ("expense-1", {"employee": "ann", "amount": 120.5}),
    ("expense-2", {"employee": "bob", "amount": 980.0}),
    ("expense-3", {"employee": "eve", "amount": 42.0}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--db", default="sqlite:///service.db")
    parser.add_argument("--token", action="append", help="a bearer token that may pass")
    parser.add_argument("--no-samples", action="store_true")
    args = parser.parse_args()
    engine = sf.Engine(args.db, workflows=[Expense])
    if not args.no_samples:
        for id, data in SAMPLES:
            engine.start(Expense, data, id=id)  # the same id again: nothing happens
    app = create_app(engine, auth=set(args.token) if args.token else None, callback_secret=SECRET)
    stop = threading.Event()
    worker = threading.Thread(
        target=engine.run_worker, kwargs={"stop": stop, "handle_signals": False}, daemon=True
    )
    worker.start()
    print(f"expense service on http://{args.host}:{args.port}/ui/", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        stop.set()
        worker.join()
        engine.close()


if __name__ == "__main__":
    main()

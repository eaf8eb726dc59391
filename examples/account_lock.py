"""Payouts that must never touch one account at the same time: a `Lock` on the account.

What it shows:

- ``Lock(name, key, *body, limit=1)``: the body runs in at most ``limit`` instances at once,
  across every instance of the store; the key is computed from the data
  (``lambda: f"account:{self.account}"``), so payouts of different accounts do not wait;
- waiters are served in arrival order, and the lock is held across a ``Wait`` in the body;
- a cancelled holder releases it, and the next waiter goes on.

Run it with

    python examples/account_lock.py [FOLDER]

(the SQLite file goes to FOLDER, default a fresh temporary folder).
"""

from __future__ import annotations

import sys
import tempfile

import stmtflow as sf
from stmtflow.runtime import Engine


class Payout(sf.WorkflowState):
    account: str
    amount: int
    debited: bool = False
    paid: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Lock(
                "pay",
                lambda: f"account:{self.account}",
                sf.Step("debit", self.debit),
                sf.Wait("confirm", sf.OnEvent("confirmed", self.confirmed)),
            )
        )

    def debit(self) -> None:
        self.debited = True

    def confirmed(self) -> None:
        self.paid = True


def run(engine: Engine) -> None:
    for _ in range(8):  # each tick runs what is due: a granted waiter is due
        engine.tick()


def show(engine: Engine, ids: list[str]) -> None:
    for id in ids:
        inst = engine.get(id)
        data: Payout = inst.data  # type: ignore[assignment]
        print(f"  {id}: {inst.status.value}, debited={data.debited}, paid={data.paid}")


def main(folder: str) -> None:
    with Engine(f"sqlite:///{folder}/locks.db", workflows=[Payout]) as engine:
        ids = ["p-1", "p-2", "p-3", "q-1"]
        print("start three payouts of account A and one of account B:")
        for id, account in zip(ids, ["A", "A", "A", "B"], strict=True):
            engine.start(Payout, {"account": account, "amount": 10}, id=id)
            run(engine)
        show(engine, ids)
        print("confirm p-1: its slot goes to p-2 (it came before p-3):")
        engine.send("p-1", "confirmed", None)
        run(engine)
        show(engine, ids)
        print("cancel p-2 while it holds the lock: p-3 goes on:")
        engine.cancel("p-2")
        run(engine)
        show(engine, ids)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())

"""Charging a card exactly once, though the step runs twice.

The payment provider below accepts the charge but the connection drops before it answers (it
raises). The engine's retry policy runs the step again a second later — with the same
``current_step().key`` — and the provider, which de-duplicates on that key, does not charge a
second time. The same holds when the worker process dies between the charge and its checkpoint.

Run it (SQLite file ``payment-demo.db`` in the current directory):

    python examples/payment.py
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import stmtflow as sf


class FlakyProvider:
    """A payment API that de-duplicates on an idempotency key (as real ones do)."""

    def __init__(self) -> None:
        self.charges: dict[str, int] = {}
        self.calls = 0

    def charge(self, amount: int, idempotency_key: str) -> str:
        self.calls += 1
        if idempotency_key not in self.charges:
            self.charges[idempotency_key] = amount
        if self.calls == 1:
            raise ConnectionError("connection reset after the charge was accepted")
        return f"ch_{len(self.charges)}"


provider = FlakyProvider()


class Checkout(sf.WorkflowState):
    amount: int
    charge_id: str = ""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step(
                "charge",
                self.charge,
                retry=sf.RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=1)),
            ),
        )

    def charge(self) -> None:
        step = sf.current_step()
        print(f"  charge attempt {step.attempt} with key {step.key}")
        self.charge_id = provider.charge(self.amount, idempotency_key=step.key)


def main() -> None:
    path = "payment-demo.db"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    engine = sf.Engine(f"sqlite:///{path}", workflows=[Checkout])
    inst = engine.start(Checkout, {"amount": 4200}, id="checkout-1")
    print(f"after start: {inst.status.value}, retry at {inst.wake_at}, error: {inst.error}")
    # A worker would call tick() when the retry is due; here we jump there directly.
    engine.tick(now=datetime.now(UTC) + timedelta(seconds=2))
    inst = engine.get("checkout-1")
    print(f"after tick:  {inst.status.value}, charge {inst.data.charge_id}")
    print(f"provider saw {provider.calls} calls and holds {len(provider.charges)} charge(s)")
    assert len(provider.charges) == 1
    engine.close()


if __name__ == "__main__":
    main()

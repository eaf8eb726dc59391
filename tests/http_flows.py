"""Workflows the HTTP tests (and the browser test) drive: an order a person approves."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

import stmtflow as sf


class Decision(BaseModel):
    approved: bool
    reviewer: str = Field(min_length=1)
    level: Literal["low", "high"] = "low"
    amount: int = Field(ge=0)


class Order(sf.WorkflowState):
    """Waits for a decision (a human input) or a cancel, then a shipping note, then ends."""

    item: str = "book"
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", lambda: self.log.append("reserve")),
            sf.Wait(
                "review",
                sf.On(
                    "decide",
                    sf.HumanInput(
                        Decision, prompt="approve the order?", assignee="ops", fn=self.decided
                    ),
                ),
                sf.OnEvent("withdraw", self.withdraw),
            ),
            sf.Wait("shipping", sf.OnEvent("shipped", self.shipped)),
        )

    def decided(self, decision: Decision) -> None:
        self.log.append(f"decided {decision.approved} by {decision.reviewer}")

    def withdraw(self) -> None:
        self.log.append("withdrawn")

    def shipped(self, tracking: str) -> str:
        self.log.append(f"shipped {tracking}")
        return tracking.upper()


class Parent(sf.WorkflowState):
    """Starts an `Order` as a child and waits for it."""

    def definition(self) -> sf.Section:
        return sf.S(sf.Call("order", Order, id=lambda: "child-of-parent"))

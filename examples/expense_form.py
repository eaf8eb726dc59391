"""An expense claim that waits for the manager's typed form, for three days at most.

What it shows:

- ``Ask`` puts a question to a person: the manager fills in an ``ExpenseDecision`` form (a
  pydantic model: its JSON Schema is the form), and ``on_decision`` receives the parsed model;
- ``engine.inputs(assignee=...)`` is a manager's to-do list across every claim, read from an
  index the engine writes with each state (no state is loaded to answer it);
- a bad form is refused with every problem listed (``CallbackInputError``) and changes nothing;
- ``timeout=`` gives up waiting: after three days without an answer the claim goes on, here to
  the finance team, whose own ``Ask`` has no deadline;
- the engine runs on SQLite with a fake clock, so the three days pass at once (``tick``).

Run it with

    python examples/expense_form.py [FOLDER]

(the SQLite file goes to FOLDER, default a fresh temporary folder). Two claims go through: one
the manager approves after a refused first try; one the manager never answers, which finance
then rejects. The same answers from a shell would be ``stmtflow inputs --assignee maria`` and
``stmtflow send exp-1 manager_review.answer '{"approve": true, "approved_amount": 180}'``.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field

import stmtflow as sf


class ExpenseDecision(BaseModel):
    """The form a manager (or finance) fills in."""

    approve: bool
    approved_amount: int | None = Field(default=None, ge=0)
    comment: str = ""


class ExpenseClaim(sf.WorkflowState):
    employee: str
    manager: str
    amount: int
    purpose: str
    decision: ExpenseDecision | None = None
    decided_by: str = ""
    history: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("submit", self.submit),
            sf.Ask(
                "manager_review",
                ExpenseDecision,
                self.by_manager,
                prompt=f"{self.employee} claims {self.amount} EUR for {self.purpose}",
                assignee=self.manager,
                timeout=timedelta(days=3),
            ),
            sf.If(
                self.decision is None,
                sf.Step("forward_to_finance", self.forward),
                sf.Ask(
                    "finance_review",
                    ExpenseDecision,
                    self.by_finance,
                    prompt=f"{self.manager} did not answer in 3 days: "
                    f"{self.employee}'s {self.amount} EUR for {self.purpose}",
                    assignee="finance",
                ),
            ),
            sf.If(
                self.decision is not None and self.decision.approve,
                sf.Step("pay", self.pay),
            ).Else(sf.Step("notify_rejection", self.notify)),
        )

    def by_manager(self, decision: ExpenseDecision) -> str:
        self.decision, self.decided_by = decision, self.manager
        return f"thanks, {self.manager}"

    def by_finance(self, decision: ExpenseDecision) -> str:
        self.decision, self.decided_by = decision, "finance"
        return "thanks, finance"

    def submit(self) -> None:
        self.history.append(f"{self.employee} submitted {self.amount} EUR ({self.purpose})")

    def forward(self) -> None:
        self.history.append(f"no answer from {self.manager} in 3 days: forwarded to finance")

    def pay(self) -> None:
        assert self.decision is not None
        paid = self.decision.approved_amount or self.amount
        self.history.append(f"paid {paid} EUR (approved by {self.decided_by})")

    def notify(self) -> None:
        assert self.decision is not None
        why = f": {self.decision.comment}" if self.decision.comment else ""
        self.history.append(f"rejected by {self.decided_by}{why}")


class Clock:
    """The engine's time, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def todo(engine: sf.Engine, who: str) -> None:
    rows = engine.inputs(assignee=who)
    print(f"  {who}'s inputs: {len(rows)}")
    for row in rows:
        due = f", answer by {row.deadline:%a %d %b %H:%M}" if row.deadline else ""
        fields = ", ".join(row.input_schema["properties"])
        print(f"    - {row.instance_id} {row.event}: {row.prompt!r} [{fields}]{due}")


def main(folder: Path) -> None:
    clock = Clock()
    url = f"sqlite:///{folder / 'expenses.db'}"
    print(f"store: {url}\n")
    with sf.Engine(url, workflows=[ExpenseClaim], clock=clock) as engine:
        claims = {
            "exp-1": {"employee": "ola", "manager": "maria", "amount": 180, "purpose": "train"},
            "exp-2": {"employee": "tim", "manager": "maria", "amount": 950, "purpose": "a chair"},
        }
        for id, data in claims.items():
            engine.start(ExpenseClaim, data, id=id)
        todo(engine, "maria")

        print("\nmaria sends a form with two mistakes for exp-1:")
        try:
            engine.send("exp-1", "manager_review.answer", {"approve": "yes", "approved_amount": -5})
        except sf.CallbackInputError as refused:
            for problem in refused.problems:
                print(f"  refused: {problem}")
        print("then a good one:")
        answer = engine.send(
            "exp-1", "manager_review.answer", {"approve": True, "approved_amount": 150}
        )
        print(f"  -> {answer!r}; exp-1 is {engine.get('exp-1').status.value}")

        print("\nthree days pass without an answer for exp-2:")
        clock.now += timedelta(days=3)
        print(f"  timers fired: {engine.tick()}")
        todo(engine, "maria")
        todo(engine, "finance")
        engine.send(
            "exp-2",
            "finance_review.answer",
            {"approve": False, "comment": "chairs come from facilities"},
        )

        print("\nWhat happened:")
        for id in claims:
            inst = engine.get(id)
            print(f"  {id} ({inst.status.value}):")
            for line in inst.data.history:  # type: ignore[attr-defined]
                print(f"    - {line}")
        print(f"\nleft to answer: {len(engine.inputs())}")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="expense-"))
    target.mkdir(parents=True, exist_ok=True)
    main(target)

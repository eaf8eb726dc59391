"""An expense approval: the workflow the README's first command runs.

An employee submits an expense; a manager approves or rejects it (an event with typed input);
if nobody decides within three days, the claim is escalated to finance. Approved claims are
paid with an idempotency key, so a retried payment step never pays twice.

Run it with the command line (``sh examples/quickstart.sh`` does all of this)::

    stmtflow run examples/quickstart.py:Expense --id exp-1 \\
        --input '{"employee": "ada", "amount": 42.5, "description": "train ticket"}'
    stmtflow show exp-1                       # waiting for approve / reject / escalate
    stmtflow send exp-1 approve '{"approver": "grace", "comment": "ok"}'
    stmtflow show exp-1                       # finished, paid

Or from Python:
    >>> import stmtflow as sf
    >>> engine = sf.Engine("memory://", workflows=[Expense])
    >>> inst = engine.start(Expense, {"employee": "ada", "amount": 42.5}, id="exp-1")
    >>> [e.name for e in engine.pending("exp-1")]
    ['approve', 'reject', 'escalate']
    >>> engine.send("exp-1", "approve", {"approver": "grace"})
    'approved by grace'
    >>> engine.get("exp-1").data.outcome
    'paid'
"""

from __future__ import annotations

from pydantic import BaseModel, Field

import stmtflow as sf


class Decision(BaseModel):
    """What a manager sends with ``approve`` or ``reject``."""

    approver: str = Field(min_length=1)
    comment: str = ""


class Expense(sf.WorkflowState):
    """One expense claim, from submission to payment (or rejection)."""

    employee: str
    amount: float = Field(gt=0)
    description: str = ""
    outcome: str = "submitted"
    decided_by: str | None = None
    payment_ref: str | None = None
    log: list[str] = Field(default_factory=list)

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("submit", self.submit),
            sf.Wait(
                "review",
                sf.OnEvent("approve", self.on_approve, sf.Step("pay", self.pay)),
                sf.OnEvent("reject", self.on_reject),
                sf.On("escalate", sf.Timer(days=3), sf.Step("notify_finance", self.escalate)),
            ),
            sf.Step("notify_employee", self.notify),
        )

    # Steps: each runs once (retried with backoff if it raises) and is persisted after it ran.

    def submit(self) -> None:
        self.log.append(f"{self.employee} submitted {self.amount:.2f} for {self.description!r}")

    def pay(self) -> None:
        # The key is the same if this step is retried or rerun after a crash: pass it to the
        # payment provider as its idempotency key and a retry can never pay twice.
        self.payment_ref = f"payout-{sf.current_step().key}"
        self.outcome = "paid"
        self.log.append(f"paid {self.amount:.2f} to {self.employee} ({self.payment_ref})")

    def escalate(self) -> None:
        self.outcome = "escalated"
        self.log.append("no decision within 3 days: escalated to finance")

    def notify(self) -> None:
        self.log.append(f"told {self.employee}: {self.outcome}")

    # Event handlers: their input is validated against the annotation before they run.

    def on_approve(self, decision: Decision) -> str:
        self.decided_by = decision.approver
        self.log.append(f"approved by {decision.approver}: {decision.comment}")
        return f"approved by {decision.approver}"

    def on_reject(self, decision: Decision) -> str:
        self.decided_by = decision.approver
        self.outcome = "rejected"
        self.log.append(f"rejected by {decision.approver}: {decision.comment}")
        return f"rejected by {decision.approver}"

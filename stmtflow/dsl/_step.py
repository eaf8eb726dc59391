"""`Step`: run an action (plain or async), with an optional `RetryPolicy`.

Example:
    >>> Step("charge", lambda: None, retry=RetryPolicy(max_attempts=5)).retry.max_attempts
    5
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeAlias

from stmtflow.dsl._checks import callable_problems, name_problems, what
from stmtflow.dsl._escalation import escalation_event
from stmtflow.dsl._kind import Drawing, Exit, Kind, Site, register, seconds
from stmtflow.state import ThreadStatus

__all__ = ["Action", "OnExhausted", "RetryPolicy", "Step"]

Action: TypeAlias = Callable[[], Any] | Callable[[], Awaitable[Any]]
OnExhausted: TypeAlias = Literal["fail", "escalate"]
"""What a step whose attempts ran out does: fail the workflow, or wait for an operator."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed step is retried.

    A failed attempt is recorded on the thread with the time of the next try; ``resume`` returns
    normally, and the step runs again once ``now`` reaches that time. The wait before attempt
    ``n + 1`` is ``initial_interval * backoff_coefficient ** (n - 1)``, capped at ``max_interval``.
    When ``max_attempts`` are used up, or an exception of a ``non_retryable`` type is raised, the
    failure is final and what happens is ``on_exhausted``'s. ``"fail"`` (the default): a ``Try``
    around the step may catch it; else the workflow is ``failed`` with the error kept in its state
    (its completed steps compensated first). ``"escalate"`` leaves the thread at the step, waiting
    for an operator on the event ``f"{step}.escalation"`` with the input ``{"action": "retry" |
    "skip" | "fail"}`` (docs/human-input.md): ``retry`` runs the step again with fresh attempts,
    ``skip`` moves on as if it had succeeded, ``fail`` is a final failure (a ``Try`` may catch it;
    else the workflow compensates and fails).

    Example:
        >>> RetryPolicy(max_attempts=5).interval(3)
        datetime.timedelta(seconds=4)
    """

    max_attempts: int = 3
    initial_interval: timedelta = timedelta(seconds=1)
    backoff_coefficient: float = 2.0
    max_interval: timedelta = timedelta(minutes=5)
    non_retryable: tuple[type[BaseException], ...] = ()
    on_exhausted: OnExhausted = "fail"

    def __post_init__(self) -> None:
        problems = []
        if self.max_attempts < 1:
            problems.append(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_interval < timedelta(0):
            problems.append("initial_interval must not be negative")
        if self.backoff_coefficient < 1:
            problems.append(f"backoff_coefficient must be >= 1, got {self.backoff_coefficient}")
        if self.max_interval < self.initial_interval:
            problems.append("max_interval must not be shorter than initial_interval")
        if self.on_exhausted not in ("fail", "escalate"):
            problems.append(f'on_exhausted must be "fail" or "escalate", got {self.on_exhausted!r}')
        if problems:
            raise ValueError("invalid RetryPolicy: " + "; ".join(problems))
        object.__setattr__(self, "non_retryable", tuple(self.non_retryable))

    def interval(self, failed_attempts: int) -> timedelta:
        """The wait after ``failed_attempts`` failures (1 for the first) before the next try."""
        scaled = self.initial_interval * (self.backoff_coefficient ** max(failed_attempts - 1, 0))
        return min(scaled, self.max_interval)

    def is_retryable(self, error: BaseException) -> bool:
        """False when ``error`` is an instance of one of the ``non_retryable`` types."""
        return not isinstance(error, self.non_retryable)


@dataclass(frozen=True, slots=True)
class Step:
    """Run ``action()`` (plain or async). ``retry`` is a `RetryPolicy`, or None to raise at once.

    ``compensate`` (a zero-argument callable, plain or async) undoes what a completed run of
    the step did: it runs, latest completion first, when the workflow fails for good, is
    cancelled with ``compensate=True``, or a ``Compensate()`` in a catch asks for it
    (docs/failures.md).

    Example:
        >>> Step("charge", lambda: None, retry=RetryPolicy(max_attempts=5)).retry.max_attempts
        5
    """

    name: str
    action: Action = field(compare=False, repr=False)
    retry: RetryPolicy | None = field(default=None, kw_only=True)
    compensate: Action | None = field(default=None, kw_only=True, compare=False, repr=False)


class StepKind(Kind[Step]):
    statement = Step
    rests = frozenset({ThreadStatus.EXECUTING, ThreadStatus.RESUMING})
    """(An escalated step's thread also waits at it, on the step's escalation event alone: the
    program's mismatch check knows that case.)"""
    blocks = True

    def names(self, stmt: Step) -> list[str]:
        return [stmt.name]

    def reserved(self, stmt: Step) -> list[str]:
        return [escalation_event(stmt.name)] if isinstance(stmt.name, str) and stmt.name else []

    def problems(self, stmt: Step, site: Site) -> list[str]:
        problems = name_problems(stmt.name)
        problems += callable_problems("action", stmt.action, required=True)
        problems += callable_problems("compensate", stmt.compensate, required=False)
        if stmt.retry is not None and not isinstance(stmt.retry, RetryPolicy):
            problems.append(f"retry must be a RetryPolicy or None, got {what(stmt.retry)}")
        return problems

    def enter(self, stmt: Step, cursor: Any) -> Step:
        return stmt

    def json(self, stmt: Step, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.label,
            "name": stmt.name,
            "retry": _retry_json(stmt.retry),
        }
        if stmt.compensate is not None:  # only then: definitions without one read as before
            data["compensate"] = True
        return data

    def draw(self, stmt: Step, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        policy = stmt.retry
        retry = f"\nup to {policy.max_attempts} attempts" if policy is not None else ""
        if policy is not None and policy.on_exhausted == "escalate":
            retry += ", then an operator"
        undo = "\ncompensable" if stmt.compensate is not None else ""
        return [Exit(drawing.box(entry, f"{stmt.name}{retry}{undo}", "step", stmt.name))]


def _retry_json(policy: object) -> dict[str, Any] | None:
    if not isinstance(policy, RetryPolicy):
        return None
    return {
        "max_attempts": policy.max_attempts,
        "initial_interval": seconds(policy.initial_interval),
        "backoff_coefficient": policy.backoff_coefficient,
        "max_interval": seconds(policy.max_interval),
        "non_retryable": [kind.__name__ for kind in policy.non_retryable],
        **({"on_exhausted": policy.on_exhausted} if policy.on_exhausted != "fail" else {}),
    }


register(StepKind())

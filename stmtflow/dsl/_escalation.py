"""Escalation: a step whose attempts ran out waits for an operator instead of failing.

With ``RetryPolicy(on_exhausted="escalate")`` the interpreter leaves such a step's thread at
the step, waiting on the event ``f"{step}.escalation"``, whose handler is `Escalation`: the
operator answers ``{"action": "retry"}`` (run the step again with a fresh set of attempts),
``{"action": "skip"}`` (move on as if it had succeeded) or ``{"action": "fail"}`` (fail the
workflow). The event is no statement of the definition: every step has it, armed only while
its thread is escalated.

Example:
    >>> escalation_event("charge"), escalated_step("charge.escalation")
    ('charge.escalation', 'charge')
    >>> ESCALATION.handle(CallbackRequest(name="charge.escalation"), {"action": "skip"})
    'skip'
"""

from __future__ import annotations

from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, TypeAdapter

from stmtflow.dsl._handlers import parse_input
from stmtflow.state import CallbackRequest

__all__ = [
    "ESCALATION",
    "SUFFIX",
    "Action",
    "Escalation",
    "EscalationAnswer",
    "escalated_step",
    "escalation_event",
]

SUFFIX = ".escalation"
"""What a step's name is followed by in the name of its escalation event."""

Action = Literal["retry", "skip", "fail"]


def escalation_event(step: str) -> str:
    """The event an escalated step's thread waits on: ``f"{step}.escalation"``."""
    return step + SUFFIX


def escalated_step(event: str) -> str | None:
    """The step an escalation event belongs to (None for any other event name)."""
    return event[: -len(SUFFIX)] if event.endswith(SUFFIX) and len(event) > len(SUFFIX) else None


class EscalationAnswer(BaseModel):
    """An operator's answer to an escalated step."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    """``retry``: run the step again with fresh attempts; ``skip``: move on as if it succeeded;
    ``fail``: fail the workflow."""


_ADAPTER: TypeAdapter[EscalationAnswer] = TypeAdapter(EscalationAnswer)
_SCHEMA = EscalationAnswer.model_json_schema()
_VALIDATOR = jsonschema.Draft202012Validator(_SCHEMA)


class Escalation:
    """The handler of every ``{step}.escalation`` event: parses the operator's answer.

    Its output is the action; what the action does is the interpreter's (it moves the thread).
    """

    type = "Escalation"

    __slots__ = ()

    def schemas(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``({"action": "retry" | "skip" | "fail"}`` as JSON Schema, the action's schema)."""
        return _SCHEMA, {"enum": ["retry", "skip", "fail"], "type": "string"}

    def handle(self, req: CallbackRequest, input: Any) -> Action:
        """The action the operator chose; `CallbackInputError` for anything else."""
        answer: EscalationAnswer = parse_input(_VALIDATOR, _ADAPTER, req.name, input)
        return answer.action


ESCALATION = Escalation()
"""The one `Escalation` handler (it keeps nothing)."""

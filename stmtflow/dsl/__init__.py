"""What users write: the statement DSL, event handlers and the `WorkflowState` base class.

Every name here is re-exported from `stmtflow`; import it from there.
"""

from stmtflow.dsl._context import StepInfo, current_error, current_step, current_time
from stmtflow.dsl._handlers import BaseHandler, FunctionHandler, Handler, Timer, handler_type
from stmtflow.dsl._statements import (
    Break,
    Case,
    Compensate,
    Continue,
    Default,
    For,
    Go,
    If,
    On,
    OnEvent,
    RetryPolicy,
    Return,
    S,
    Section,
    Sleep,
    Statement,
    Step,
    Switch,
    Try,
    Wait,
    WaitFor,
)
from stmtflow.dsl._workflow import WorkflowState

__all__ = [
    "BaseHandler",
    "Break",
    "Case",
    "Compensate",
    "Continue",
    "Default",
    "For",
    "FunctionHandler",
    "Go",
    "Handler",
    "If",
    "On",
    "OnEvent",
    "RetryPolicy",
    "Return",
    "S",
    "Section",
    "Sleep",
    "Statement",
    "Step",
    "StepInfo",
    "Switch",
    "Timer",
    "Try",
    "Wait",
    "WaitFor",
    "WorkflowState",
    "current_error",
    "current_step",
    "current_time",
    "handler_type",
]

"""What users write: the statement DSL, event handlers and the `WorkflowState` base class.

Every name here is re-exported from `stmtflow`; import it from there.
"""

from stmtflow.dsl._context import StepInfo, current_error, current_step, current_time
from stmtflow.dsl._handlers import BaseHandler, FunctionHandler, Handler, Timer, handler_type
from stmtflow.dsl._human import HumanInput
from stmtflow.dsl._statements import (
    Ask,
    Break,
    Case,
    Compensate,
    Continue,
    Default,
    For,
    ForEach,
    Go,
    If,
    Join,
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
    "Ask",
    "BaseHandler",
    "Break",
    "Case",
    "Compensate",
    "Continue",
    "Default",
    "For",
    "ForEach",
    "FunctionHandler",
    "Go",
    "Handler",
    "HumanInput",
    "If",
    "Join",
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

"""What users write: the statement DSL, event handlers and the `WorkflowState` base class.

Every name here is re-exported from `stmtflow`; import it from there.
"""

from stmtflow.dsl._context import StepInfo, current_step, current_time
from stmtflow.dsl._handlers import BaseHandler, FunctionHandler, Handler, Timer, handler_type
from stmtflow.dsl._human import HumanInput
from stmtflow.dsl._statements import (
    Ask,
    Break,
    Call,
    Case,
    Child,
    ChildResult,
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
    Start,
    Statement,
    Step,
    Switch,
    Wait,
    WaitFor,
)
from stmtflow.dsl._workflow import WorkflowState

__all__ = [
    "Ask",
    "BaseHandler",
    "Break",
    "Call",
    "Case",
    "Child",
    "ChildResult",
    "Continue",
    "Default",
    "For",
    "FunctionHandler",
    "Go",
    "Handler",
    "HumanInput",
    "If",
    "On",
    "OnEvent",
    "RetryPolicy",
    "Return",
    "S",
    "Section",
    "Sleep",
    "Start",
    "Statement",
    "Step",
    "StepInfo",
    "Switch",
    "Timer",
    "Wait",
    "WaitFor",
    "WorkflowState",
    "current_step",
    "current_time",
    "handler_type",
]

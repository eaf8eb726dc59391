"""stmtflow: durable long-running workflows written as plain Python.

A workflow is a pydantic model whose ``definition()`` returns a tree of statements; an
interpreter resumes that tree by program counter across named threads, and both the data and
the execution `State` are plain JSON you store anywhere.

Example:
    >>> import stmtflow as sf
    >>> class Hello(sf.WorkflowState):
    ...     said: list[str] = []
    ...     def definition(self) -> sf.Section:
    ...         return sf.S(sf.Step("hello", lambda: self.said.append("hi")))
    >>> wf = Hello()
    >>> sf.resume(wf, sf.new_state("hello-1", Hello)).status.value, wf.said
    ('finished', ['hi'])
"""

from typing import TYPE_CHECKING, Any

from stmtflow.analysis import (
    check_compatibility,
    find_handler,
    find_step,
    find_waiting_step,
    validate,
    walk,
)
from stmtflow.core import (
    acancel,
    ahandle_callback,
    aresume,
    cancel,
    handle_callback,
    restart,
    resume,
)
from stmtflow.dsl import (
    Ask,
    BaseHandler,
    Break,
    Call,
    Case,
    Child,
    ChildResult,
    Compensate,
    Continue,
    Default,
    For,
    ForEach,
    FunctionHandler,
    Go,
    Handler,
    HumanInput,
    If,
    Join,
    Lock,
    On,
    OnEvent,
    RetryPolicy,
    Return,
    S,
    Section,
    Sleep,
    Start,
    Step,
    StepInfo,
    Switch,
    Timer,
    Try,
    Wait,
    WaitFor,
    WorkflowState,
    current_error,
    current_step,
    current_time,
    emit,
)
from stmtflow.errors import (
    AmbiguousCallback,
    CallbackError,
    CallbackInputError,
    ConflictError,
    DefinitionError,
    DefinitionMismatch,
    ExecutionError,
    HandlerError,
    NotFound,
    NotWaiting,
    OutboxError,
    RewindError,
    ScheduleError,
    StaleCallback,
    StateFormatError,
    StepError,
    StepLimitExceeded,
    StmtflowError,
    UnknownCallback,
    WorkflowFinished,
)
from stmtflow.render import (
    GraphvizError,
    GraphvizNotFound,
    definition_json,
    render_image,
    to_dot,
    to_mermaid,
)
from stmtflow.state import (
    MAIN_THREAD,
    CallbackRequest,
    CaughtError,
    CheckpointType,
    State,
    Thread,
    ThreadStatus,
    WaitEvent,
    WaitEventStatus,
    WorkflowStatus,
    load_state,
    new_state,
)

if TYPE_CHECKING:
    from stmtflow.runtime import (
        Engine,
        HistoryEvent,
        Instance,
        NatsSink,
        OutboxMessage,
        PendingInput,
        RedisStreamSink,
        Schedule,
        StuckItem,
    )
    from stmtflow.stores import open_store

# The runtime (stores, engine, worker) is imported on first use, so that `import stmtflow` for the
# library alone stays light.
_LAZY = {
    "Engine": "stmtflow.runtime",
    "HistoryEvent": "stmtflow.runtime",
    "Instance": "stmtflow.runtime",
    "PendingInput": "stmtflow.runtime",
    "OutboxMessage": "stmtflow.runtime",
    "RedisStreamSink": "stmtflow.runtime",
    "NatsSink": "stmtflow.runtime",
    "Schedule": "stmtflow.runtime",
    "StuckItem": "stmtflow.runtime",
    "open_store": "stmtflow.stores",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stmtflow' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [  # noqa: RUF022 - grouped by kind, as the docs present them
    # statements
    "Ask",
    "Break",
    "Case",
    "Compensate",
    "Continue",
    "Default",
    "For",
    "ForEach",
    "Go",
    "If",
    "Join",
    "Lock",
    "On",
    "OnEvent",
    "RetryPolicy",
    "Return",
    "S",
    "Section",
    "Sleep",
    "Step",
    "Switch",
    "Try",
    "Wait",
    "WaitFor",
    # workflows and state
    "MAIN_THREAD",
    "CallbackRequest",
    "CaughtError",
    "CheckpointType",
    "State",
    "Thread",
    "ThreadStatus",
    "WaitEvent",
    "WaitEventStatus",
    "WorkflowState",
    "WorkflowStatus",
    "load_state",
    "new_state",
    # driving an execution
    "StepInfo",
    "acancel",
    "ahandle_callback",
    "aresume",
    "cancel",
    "current_error",
    "current_step",
    "current_time",
    "handle_callback",
    "restart",
    "resume",
    # handlers
    "BaseHandler",
    "FunctionHandler",
    "Handler",
    "HumanInput",
    "Timer",
    # child workflows
    "Call",
    "Child",
    "ChildResult",
    "Start",
    # queries, rendering and checks
    "check_compatibility",
    "definition_json",
    "find_handler",
    "find_step",
    "find_waiting_step",
    "render_image",
    "to_dot",
    "to_mermaid",
    "validate",
    "walk",
    # the runtime (imported on first use)
    "Engine",
    "HistoryEvent",
    "Instance",
    "PendingInput",
    "Schedule",
    "StuckItem",
    "open_store",
    # the outbox: emit in a step, delivered to sinks (the sinks imported on first use)
    "emit",
    "OutboxMessage",
    "RedisStreamSink",
    "NatsSink",
    # errors
    "AmbiguousCallback",
    "CallbackError",
    "CallbackInputError",
    "ConflictError",
    "DefinitionError",
    "DefinitionMismatch",
    "ExecutionError",
    "GraphvizError",
    "GraphvizNotFound",
    "HandlerError",
    "NotFound",
    "NotWaiting",
    "OutboxError",
    "RewindError",
    "ScheduleError",
    "StaleCallback",
    "StateFormatError",
    "StepError",
    "StepLimitExceeded",
    "StmtflowError",
    "UnknownCallback",
    "WorkflowFinished",
]

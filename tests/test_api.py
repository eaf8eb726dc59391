"""The public API of ``stmtflow`` is pinned: adding or removing a name is a reviewed change.

DESIGN §2 lists the names; STYLE.md point 9 asks for a test that pins them.
"""

from __future__ import annotations

import importlib
import pkgutil
from enum import Enum

import pytest

import stmtflow as sf

EXPORTED = {
    # statements
    "Break",
    "Case",
    "Continue",
    "Default",
    "For",
    "Go",
    "If",
    "On",
    "OnEvent",
    "RetryPolicy",
    "Return",
    "S",
    "Section",
    "Sleep",
    "Step",
    "Switch",
    "Wait",
    "WaitFor",
    # workflows and state
    "MAIN_THREAD",
    "CallbackRequest",
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
    "current_step",
    "current_time",
    "handle_callback",
    "restart",
    "resume",
    # the runtime
    "Engine",
    "Instance",
    "open_store",
    # handlers
    "BaseHandler",
    "FunctionHandler",
    "Handler",
    "Timer",
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
    "StaleCallback",
    "StateFormatError",
    "StepError",
    "StepLimitExceeded",
    "StmtflowError",
    "UnknownCallback",
    "WorkflowFinished",
}

DESIGN_NAMES = [
    # statements
    "S",
    "Section",
    "Step",
    "If",
    "Switch",
    "Case",
    "Default",
    "For",
    "Break",
    "Continue",
    "Return",
    "Go",
    "Wait",
    "On",
    "OnEvent",
    "WaitFor",
    "Sleep",
    # workflows and state
    "WorkflowState",
    "State",
    "Thread",
    "WaitEvent",
    "CallbackRequest",
    "new_state",
    "MAIN_THREAD",
    "load_state",
    "WorkflowStatus",
    "ThreadStatus",
    "WaitEventStatus",
    "CheckpointType",
    # driving
    "resume",
    "aresume",
    "handle_callback",
    "ahandle_callback",
    "validate",
    "walk",
    "find_step",
    "find_handler",
    "find_waiting_step",
    "current_step",
    "StepInfo",
    "RetryPolicy",
    "definition_json",
    # handlers
    "Handler",
    "FunctionHandler",
    "Timer",
    # seeing and testing
    "to_mermaid",
    "to_dot",
    "check_compatibility",
    # errors
    "StmtflowError",
    "DefinitionError",
    "DefinitionMismatch",
    "StepError",
    "CallbackError",
    "UnknownCallback",
    "StaleCallback",
    "NotWaiting",
    "AmbiguousCallback",
    "WorkflowFinished",
    "CallbackInputError",
    "HandlerError",
    "StepLimitExceeded",
    "ConflictError",
    "NotFound",
    "StateFormatError",
    "ExecutionError",
]


def test_all_is_pinned() -> None:
    assert set(sf.__all__) == EXPORTED
    assert len(sf.__all__) == len(set(sf.__all__)), "a name is listed twice in __all__"


def test_every_exported_name_exists() -> None:
    missing = [name for name in sf.__all__ if not hasattr(sf, name)]
    assert missing == []


def _defined_in_package(name: str) -> bool:
    """True when some module of the core package defines ``name`` (stores, cli excluded)."""
    for info in pkgutil.iter_modules(sf.__path__, prefix="stmtflow."):
        if info.ispkg or info.name in ("stmtflow.cli", "stmtflow.runtime._engine"):
            continue
        module = importlib.import_module(info.name)
        if hasattr(module, name):
            return True
    return False


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_every_design_name_that_exists_is_exported(name: str) -> None:
    if name not in sf.__all__ and not _defined_in_package(name):
        pytest.skip(f"{name} is not built yet")
    assert name in sf.__all__
    assert hasattr(sf, name)


def test_enums_have_the_designed_string_values() -> None:
    expected: dict[type[Enum], set[str]] = {
        sf.WorkflowStatus: {"resuming", "waiting", "finished", "failed", "cancelled"},
        sf.ThreadStatus: {"executing", "resuming", "waiting_event", "waiting_condition"},
        sf.WaitEventStatus: {
            "pending_setup",
            "setup",
            "pending_teardown",
            "setup_error",
            "teardown_error",
        },
        sf.CheckpointType: {
            "after_step",
            "after_setup",
            "after_teardown",
            "after_resume",
            "after_condition",
        },
    }
    for enum, values in expected.items():
        assert {m.value for m in enum} == values
        assert all(isinstance(m, str) for m in enum)


def test_main_thread_id() -> None:
    assert sf.MAIN_THREAD == "_main_"
    assert [t.id for t in sf.new_state("x", "X").threads] == ["_main_"]


def test_every_error_has_one_root() -> None:
    errors = [
        getattr(sf, n) for n in sf.__all__ if isinstance(getattr(sf, n), type) and "Error" in n
    ]
    errors += [sf.UnknownCallback, sf.StaleCallback, sf.NotWaiting, sf.AmbiguousCallback]
    errors += [sf.WorkflowFinished, sf.StepLimitExceeded, sf.NotFound, sf.DefinitionMismatch]
    for error in errors:
        assert issubclass(error, sf.StmtflowError), error
    for kind in (
        sf.UnknownCallback,
        sf.StaleCallback,
        sf.NotWaiting,
        sf.AmbiguousCallback,
        sf.WorkflowFinished,
        sf.CallbackInputError,
        sf.HandlerError,
    ):
        assert issubclass(kind, sf.CallbackError), kind


def test_state_models_carry_the_designed_fields() -> None:
    assert {"id", "workflow", "status", "threads", "pc"} <= set(sf.State.model_fields)
    assert {"id", "name", "status", "cur_step", "cur_callback", "wait_events", "pc"} <= set(
        sf.Thread.model_fields
    )
    assert {"type", "req", "status", "handled", "error"} <= set(sf.WaitEvent.model_fields)
    assert {"workflow_id", "thread_id", "name", "pc", "setup_data"} <= set(
        sf.CallbackRequest.model_fields
    )

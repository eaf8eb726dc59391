"""The public API of ``stmtflow`` is pinned: adding or removing a name is a reviewed change.

DESIGN §2 lists the names; STYLE.md point 9 asks for a test that pins them. The error tree is
pinned too: every exception class of the package lives in `stmtflow.errors`, under one root, and
the tree drawn in that module's docstring is the real one.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import pkgutil
import subprocess
import sys
from datetime import timedelta
from enum import Enum
from pathlib import Path
from types import ModuleType

import pytest

import stmtflow as sf
import stmtflow.asl
import stmtflow.dag
import stmtflow.errors
import stmtflow.render
import stmtflow.runtime
import stmtflow.runtime._loader
import stmtflow.stores
import stmtflow.testing
from stmtflow.testing import WorkflowHarness

EXPORTED = {
    # child workflows
    "Call",
    "Child",
    "ChildResult",
    "Start",
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
    # the runtime
    "Engine",
    "HistoryEvent",
    "Instance",
    "PendingInput",
    "Schedule",
    "StuckItem",
    "open_store",
    # the outbox
    "emit",
    "OutboxMessage",
    "RedisStreamSink",
    "NatsSink",
    # handlers
    "BaseHandler",
    "FunctionHandler",
    "Handler",
    "HumanInput",
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
}

DESIGN_NAMES = [  # DESIGN §2; names of later sections join when they are built
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
    # §7 failures
    "Try",
    "Compensate",
    "current_error",
    "CaughtError",
    # DESIGN §6 (composition)
    "Join",
    "ForEach",
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
    "RewindError",
    "StateFormatError",
    "ExecutionError",
    # §8 operations: the outbox
    "emit",
    "RedisStreamSink",
    "NatsSink",
]


def test_all_is_pinned() -> None:
    assert set(sf.__all__) == EXPORTED
    assert len(sf.__all__) == len(set(sf.__all__)), "a name is listed twice in __all__"


def test_every_exported_name_exists() -> None:
    missing = [name for name in sf.__all__ if not hasattr(sf, name)]
    assert missing == []


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_every_design_name_is_exported(name: str) -> None:
    assert name in sf.__all__
    assert getattr(sf, name) is not None


def test_design_members_users_call() -> None:
    """The DESIGN §2 names that are not top-level: methods, fields and the testing kit."""
    branch = sf.If(True, sf.Return()).ElseIf(False, sf.Return()).Else(sf.Return())
    assert isinstance(branch, sf.If)
    assert [f.name for f in dataclasses.fields(sf.StepInfo)] == [
        "workflow_id",
        "thread_id",
        "step",
        "attempt",
        "key",
    ]

    class Hello(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Wait("w", sf.OnEvent("go", lambda: None)), sf.Step("hi", lambda: None))

    harness = WorkflowHarness(Hello).start()
    assert harness.send("go") is None
    assert harness.advance(timedelta(seconds=1)) == []
    assert (harness.log, harness.state.status, type(harness.data)) == (["hi"], "finished", Hello)
    assert callable(WorkflowHarness.schedule) and callable(WorkflowHarness.fires)  # schedules


DESIGNED_ENUMS: dict[type[Enum], dict[str, str]] = {
    sf.WorkflowStatus: {
        "RESUMING": "resuming",
        "WAITING": "waiting",
        "FINISHED": "finished",
        "FAILED": "failed",
        "CANCELLED": "cancelled",
        "COMPENSATING": "compensating",
    },
    sf.ThreadStatus: {
        "EXECUTING": "executing",
        "RESUMING": "resuming",
        "WAITING_EVENT": "waiting_event",
        "WAITING_CONDITION": "waiting_condition",
    },
    sf.WaitEventStatus: {
        "PENDING_SETUP": "pending_setup",
        "SETUP": "setup",
        "PENDING_TEARDOWN": "pending_teardown",
        "SETUP_ERROR": "setup_error",
        "TEARDOWN_ERROR": "teardown_error",
    },
    sf.CheckpointType: {
        "AFTER_STEP": "after_step",
        "AFTER_SETUP": "after_setup",
        "AFTER_TEARDOWN": "after_teardown",
        "AFTER_RESUME": "after_resume",
        "AFTER_CONDITION": "after_condition",
    },
}
"""Each status enum as DESIGN §2 lists it: member name -> the string stored and compared."""


@pytest.mark.parametrize("enum", DESIGNED_ENUMS, ids=lambda e: e.__name__)
def test_enums_have_the_designed_string_values(enum: type[Enum]) -> None:
    assert {m.name: m.value for m in enum} == DESIGNED_ENUMS[enum]
    for value in DESIGNED_ENUMS[enum].values():
        member = enum(value)
        # What users rely on: a member equals, prints and serializes as its text.
        assert member == value
        assert (str(member), f"{member}", json.dumps(member)) == (value, value, f'"{value}"')


def test_main_thread_id() -> None:
    assert sf.MAIN_THREAD == "_main_"
    assert [t.id for t in sf.new_state("x", "X").threads] == ["_main_"]


def test_callback_errors_are_one_family() -> None:
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


_FIRST_USE = """
import json, sys
HEAVY = ("stmtflow.runtime", "stmtflow.stores", "sqlite3", "psycopg")
def loaded():
    return sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
import stmtflow
before = loaded()
engine = stmtflow.Engine
print(json.dumps({"before": before, "after": loaded(), "module": engine.__module__}))
"""


def test_the_runtime_is_imported_on_first_use() -> None:
    """``import stmtflow`` stays light: no runtime, store or database driver until ``Engine``."""
    proc = subprocess.run(
        [sys.executable, "-c", _FIRST_USE], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["before"] == []
    assert {"stmtflow.runtime", "stmtflow.stores", "sqlite3"} <= set(seen["after"])
    # psycopg is an optional extra: only the PostgreSQL store imports it, when it opens.
    assert [m for m in seen["after"] if m.split(".")[0] == "psycopg"] == []
    assert seen["module"].startswith("stmtflow.runtime.")


def test_the_runtime_names_are_the_runtime_objects() -> None:
    assert sf.Engine is stmtflow.runtime.Engine
    assert sf.Instance is stmtflow.runtime.Instance
    assert sf.PendingInput is stmtflow.runtime.PendingInput is stmtflow.stores.PendingInput
    assert sf.open_store is stmtflow.stores.open_store
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = sf.Nope  # type: ignore[attr-defined]


PRIVATE_CONTROL_FLOW = {
    "Contended": "the engine's signal (runtime._unit) to redo an unleased write under a lease",
    "Problem": "an HTTP refusal (http._problems), raised by a route and answered by the app",
    "FormProblem": "a web form field that cannot be read as its type (http._forms)",
    "AslFailure": "an ASL state's error on its way to the state's Retry and Catch (asl._failure)",
}
"""Exception classes allowed outside `stmtflow.errors`: private, caught where they are raised."""


def _package_modules() -> list[ModuleType]:
    """Every module of the package, imported (a ``__main__`` module would run the CLI)."""
    names = ["stmtflow"] + [
        info.name
        for info in pkgutil.walk_packages(sf.__path__, prefix="stmtflow.")
        if not info.name.endswith(".__main__")
    ]
    return [importlib.import_module(name) for name in names]


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined at the top of a package module, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for module in _package_modules():
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_every_exception_class_lives_in_the_error_tree() -> None:
    classes = _exception_classes()
    outside = [
        name
        for name, cls in classes.items()
        if cls.__module__ != "stmtflow.errors" and cls.__name__ not in PRIVATE_CONTROL_FLOW
    ]
    assert outside == [], "define these in stmtflow/errors.py and import them where raised"
    in_tree = [cls for cls in classes.values() if cls.__module__ == "stmtflow.errors"]
    assert [c.__name__ for c in in_tree if not issubclass(c, sf.StmtflowError)] == []
    assert sorted(c.__name__ for c in in_tree) == sorted(stmtflow.errors.__all__)
    # The allowed ones exist (the list does not rot), and do not pose as stmtflow errors.
    private = {c.__name__: c for c in classes.values() if c.__name__ in PRIVATE_CONTROL_FLOW}
    assert set(private) == set(PRIVATE_CONTROL_FLOW), "drop allowed names that no longer exist"
    assert [n for n, c in private.items() if issubclass(c, sf.StmtflowError)] == []


def test_no_exception_class_hides_inside_a_function() -> None:
    """The walk above sees module-level classes; this finds one defined in a body."""
    nested: list[str] = []
    for module in _package_modules():
        if module.__file__ is None:
            continue
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and id(node) not in top_level:
                bases = [ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    nested.append(f"{module.__name__}: class {node.name}({', '.join(bases)})")
    assert nested == []


def _drawn_tree() -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """The docstring's drawing: each class -> (its parent in the tree, the builtins it mixes in)."""
    drawing = (stmtflow.errors.__doc__ or "").split("```")[1]
    drawn: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    parents: list[str] = []
    for line in drawing.strip().splitlines():
        if line.startswith("StmtflowError"):
            drawn["StmtflowError"] = (None, ("Exception",))
            parents = ["StmtflowError"]
            continue
        head, sep, rest = line.partition("── ")
        if not sep:
            continue  # a description running on to a second line
        depth = len(head) // 4  # "├" at the first level, "│   ├" at the second, ...
        name, _, described = rest.partition(" ")
        mixins: tuple[str, ...] = ()
        if described.lstrip().startswith("("):
            inside = described.split("(", 1)[1].split(")", 1)[0]
            mixins = tuple(part.strip() for part in inside.split(","))
        del parents[depth + 1 :]
        drawn[name] = (parents[depth], mixins)
        parents.append(name)
    return drawn


def test_the_drawn_error_tree_is_the_real_one() -> None:
    real: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    for name in stmtflow.errors.__all__:
        cls = getattr(stmtflow.errors, name)
        ours = [b.__name__ for b in cls.__bases__ if b.__module__ == "stmtflow.errors"]
        builtins = tuple(b.__name__ for b in cls.__bases__ if b.__module__ == "builtins")
        real[name] = (ours[0] if ours else None, builtins)
    assert _drawn_tree() == real


def test_moved_errors_are_still_importable_where_they_were() -> None:
    assert stmtflow.render.GraphvizError is stmtflow.errors.GraphvizError
    assert stmtflow.render.GraphvizNotFound is stmtflow.errors.GraphvizNotFound
    assert stmtflow.runtime._loader.TargetError is stmtflow.errors.TargetError
    assert stmtflow.testing.HarnessError is stmtflow.errors.HarnessError
    assert stmtflow.testing.SnapshotMismatch is stmtflow.errors.SnapshotMismatch
    assert stmtflow.testing.SnapshotMissing is stmtflow.errors.SnapshotMissing
    assert stmtflow.asl.TaskError is stmtflow.errors.TaskError
    assert stmtflow.asl.AslExecutionFailed is stmtflow.errors.AslExecutionFailed
    assert stmtflow.asl.DefinitionError is stmtflow.errors.DefinitionError
    assert stmtflow.dag.DagFailed is stmtflow.errors.DagFailed


ASL_EXPORTED = {
    "TOKEN_EVENT",
    "AslExecutionFailed",
    "AslResult",
    "AslWorkflow",
    "DefinitionError",
    "TaskError",
    "conformance_run",
    "load",
    "problems",
    "run",
    "validate",
}


def test_the_asl_api_is_pinned() -> None:
    """DESIGN §9: ``stmtflow.asl.load``, ``run`` and ``AslResult``, and what goes with them."""
    assert set(stmtflow.asl.__all__) == ASL_EXPORTED
    assert [n for n in stmtflow.asl.__all__ if not hasattr(stmtflow.asl, n)] == []
    assert [f.name for f in dataclasses.fields(stmtflow.asl.AslResult)] == [
        "status",
        "output",
        "error",
        "cause",
    ]


def test_the_dag_importer_names_are_pinned() -> None:
    assert sorted(stmtflow.dag.__all__) == [
        "DagFailed",
        "DagSpec",
        "DagWorkflow",
        "Handlers",
        "StepSpec",
        "load",
        "schema",
    ]
    assert callable(stmtflow.dag.load) and stmtflow.dag.schema()["title"] == "stmtflow YAML DAG"

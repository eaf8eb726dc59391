"""`load`: a state machine as a workflow class, run by the engine like any other workflow.

The class's data is the execution: ``input`` (given at start), ``execution`` (the frames of
`stmtflow.asl._machine`: where every branch stands, and its data) and ``result`` (how it
ended). Its statement tree is one loop, the same for every state machine::

    For states, while the execution has not ended:
        Step advance            move every frame as far as it can (one Task call at most)
        If it must wait:
            Wait waiting        On due: a Timer at the earliest Wait / back-off / timeout
                                On task_token: a token sent back ({"token", "output"} or
                                               {"token", "error", "cause"})
    If it FAILED: Step failed   the instance fails with the ASL error and cause

So the store holds one checkpoint per advance, and a stored instance is its frames: resuming
reads them and goes on, with nothing replayed; a crash in the middle of an advance repeats
that advance (at most one Task call) — the at-least-once of every stmtflow step.

Parallel branches and Map iterations are frames of the same execution rather than stmtflow
threads (``Go``/``ForEach``): their number and shape come from the data at run time, their
retries and catchers are the ASL's own, and a Map's MaxConcurrency is a count of running
frames. What is durable about them — each waiting on its own timer or token, resuming where
it stood — is the frames'.

Example:
    >>> from stmtflow.testing import WorkflowHarness
    >>> Hello = load({"StartAt": "Hi", "States": {"Hi": {"Type": "Pass", "End": True}}},
    ...              name="Hello")
    >>> h = WorkflowHarness(Hello, data={"input": {"who": "you"}}).start()
    >>> h.status.value, h.data.result
    ('finished', {'status': 'SUCCEEDED', 'output': {'who': 'you'}})
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import Field

from stmtflow.asl._frames import deliver, new_execution, next_due, waiting_tokens
from stmtflow.asl._machine import Runner
from stmtflow.asl._task import resource_for
from stmtflow.asl._validate import problems
from stmtflow.dsl import (
    For,
    If,
    On,
    RetryPolicy,
    S,
    Step,
    Timer,
    Wait,
    WorkflowState,
    current_step,
    current_time,
)
from stmtflow.errors import AslExecutionFailed, CallbackInputError, DefinitionError
from stmtflow.state import CallbackRequest

__all__ = ["TOKEN_EVENT", "AslWorkflow", "load", "parse_definition"]

TOKEN_EVENT = "task_token"
"""The event a Task waiting for its token is sent back with (``engine.send(id, ...)``)."""

_ONCE = RetryPolicy(max_attempts=1)


def parse_definition(definition: Any) -> dict[str, Any]:
    """A definition given as a dict or as JSON text, as a dict; `DefinitionError` otherwise."""
    if isinstance(definition, str | bytes):
        try:
            definition = json.loads(definition)
        except ValueError as exc:
            raise DefinitionError(f"the state machine is not JSON text: {exc}") from None
    if not isinstance(definition, dict):
        raise DefinitionError("the state machine must be a JSON object")
    return definition


class _Due(Timer):
    """A Timer at the execution's earliest due time, read when the wait is armed."""

    __slots__ = ("wf",)

    def __init__(self, wf: AslWorkflow) -> None:
        super().__init__()
        self.wf = wf

    def setup(self, req: CallbackRequest) -> str:
        return next_due(self.wf.execution) or ""


class _Tokens:
    """The event of Tasks waiting for a token; its setup data lists the tokens awaited."""

    type = "TaskToken"

    def __init__(self, wf: AslWorkflow) -> None:
        self.wf = wf

    def setup(self, req: CallbackRequest) -> str:
        return json.dumps(waiting_tokens(self.wf.execution))

    def handle(self, req: CallbackRequest, input: Any) -> Any:
        problems = _reply_problems(input)
        token = input.get("token") if isinstance(input, dict) else None
        if not problems and token not in waiting_tokens(self.wf.execution):
            problems = [f"token: no Task waits for the token {token!r}"]
        if problems:
            raise CallbackInputError("not a task token reply", problems)
        reply = {k: input[k] for k in ("output", "error", "cause") if k in input}
        deliver(self.wf.execution, str(token), reply)
        return {"accepted": token}


def _reply_problems(input: Any) -> list[str]:
    if not isinstance(input, dict):
        return ['the input must be an object: {"token", "output"} or {"token", "error"}']
    out = []
    if not isinstance(input.get("token"), str):
        out.append("token: a string is required")
    if ("output" in input) == ("error" in input):
        out.append('exactly one of "output" (success) or "error" (failure) is required')
    if "error" in input and not isinstance(input["error"], str):
        out.append("error: must be a string")
    if input.get("cause") is not None and not isinstance(input["cause"], str):
        out.append("cause: must be a string")
    if extra := set(input) - {"token", "output", "error", "cause"}:
        out.append(f"unknown fields: {sorted(extra)}")
    return out


class AslWorkflow(WorkflowState):
    """The base of the classes `load` builds (see the module's docstring)."""

    static_definition: ClassVar[bool] = True
    asl_definition: ClassVar[dict[str, Any]] = {}
    asl_resources: ClassVar[dict[str, Callable[..., Any]]] = {}
    asl_budget: ClassVar[int] = 1000

    input: Any = None
    execution: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    more: bool = False

    def definition(self) -> Any:
        return S(
            For(
                "states",
                lambda: self.result is None,
                Step("advance", self.advance, retry=_ONCE),
                If(
                    lambda: self.result is None and not self.more,
                    Wait("waiting", On("due", _Due(self)), On(TOKEN_EVENT, _Tokens(self))),
                ),
            ),
            If(
                lambda: (self.result or {}).get("status") == "FAILED",
                Step("failed", self.failed, retry=_ONCE),
            ),
        )

    def advance(self) -> None:
        """Move the execution as far as it goes (see `stmtflow.asl._machine.Runner`)."""
        cls = type(self)
        runner = Runner(
            cls.asl_definition,
            cls.asl_resources,
            current_time,
            budget=cls.asl_budget,
            name=cls.workflow_name,  # type: ignore[attr-defined]
        )
        if not self.execution:
            name = current_step().workflow_id
            self.execution = new_execution(cls.asl_definition, self.input, current_time(), name)
        runner.advance(self.execution)
        self.result = self.execution["result"]
        self.more = self.result is None and runner.halt

    def failed(self) -> None:
        result = self.result or {}
        error, cause = result.get("error"), result.get("cause")
        raise AslExecutionFailed(f"{error}: {cause}" if cause else str(error))


def load(
    definition: Any,
    *,
    resources: Mapping[str, Callable[..., Any]] | None = None,
    name: str | None = None,
) -> type[AslWorkflow]:
    """A workflow class running the state machine ``definition`` (a dict or JSON text).

    Args:
        definition: the Amazon States Language state machine.
        resources: each Task's ``Resource`` mapped to the Python callable it runs (called with
            the Task's input, sync or async); every Task must find its callable here.
        name: the workflow type name it is registered and stored under (default
            ``"StateMachine"``).

    Start an instance with ``{"input": ...}`` as its data; ``data.result`` is
    ``{"status": "SUCCEEDED", "output": ...}`` or ``{"status": "FAILED", "error", "cause"}``.

    Raises:
        DefinitionError: listing every problem of the definition.
    """
    spec = parse_definition(definition)
    found = problems(spec)
    if not found:
        found = _missing_resources(spec, dict(resources or {}), "")
    if found:
        raise DefinitionError(found)
    type_name = name or "StateMachine"
    attrs = {
        "workflow_name": type_name,
        "asl_definition": spec,
        "asl_resources": dict(resources or {}),
        "__module__": __name__,
        "__qualname__": type_name,
        "__annotations__": {
            "workflow_name": ClassVar[str],
        },
    }
    return type(type_name, (AslWorkflow,), attrs)


def _missing_resources(machine: dict[str, Any], resources: dict[str, Any], at: str) -> list[str]:
    out = []
    for state_name, spec in machine["States"].items():
        here = f"{at}States.{state_name}"
        if spec["Type"] == "Task" and resource_for(spec, resources) is None:
            out.append(f"{here}.Resource: no callable is given for {spec['Resource']!r}")
        for n, branch in enumerate(spec.get("Branches", [])):
            out += _missing_resources(branch, resources, f"{here}.Branches[{n}].")
        for key in ("ItemProcessor", "Iterator"):
            if key in spec:
                out += _missing_resources(spec[key], resources, f"{here}.{key}.")
    return out

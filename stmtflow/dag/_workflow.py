"""`DagWorkflow`: the workflow class a DAG file becomes, built from ordinary statements.

A step's thread starts when its dependencies settled: the main thread loops (``dag.start``),
waiting (``WaitFor dag.ready``) until a step is queued and then starting its thread (``Go
dag.step``, thread id = step id, arg = step id, group ``steps``). The thread runs the step's
handler as a ``Step`` with the file's retry policy and compensation; a ``fallback`` is a
``Catch`` around that step running the fallback handler as the step ``{id}.fallback``; a final
failure is caught once more and recorded in ``failed``, and a step one of whose dependencies
failed is skipped (also recorded). Whatever settles a step queues its dependents whose
dependencies all settled (``DagSpec.dependents``), so a run's work follows the edges of the
DAG, not the square of its steps. Once every thread started, the main thread joins the group
(``dag.join``), then the step ``dag.finish`` either ends the run or — when something failed —
fails, and this uncaught final failure unwinds the saga: the compensations of every step that
completed, latest completion first (DESIGN §7). Independent branches run to their end first.

The data is ``input`` (the run's input), ``outputs`` (step id → its handler's or fallback's
output, JSON), ``failed`` (step id → why), ``queue``, ``started`` and ``open`` (what is ready,
below) and ``run`` (a token telling runs apart, see `stmtflow.dag._runner`). A run stored by a
release that started every step's thread at once (its data has a ``run`` but no ``queue``)
keeps that shape to its end: its threads stand on statements only that shape has.

Example:
    >>> import stmtflow as sf
    >>> from stmtflow.dag import load
    >>> Twice = load("steps: [{id: a, handler: one}, {id: b, handler: plus, depends_on: [a]}]",
    ...              handlers={"one": lambda inputs: 1, "plus": lambda inputs: inputs["a"] + 1})
    >>> wf = Twice()
    >>> sf.resume(wf, sf.new_state("t-1", Twice)).status.value, wf.outputs
    ('finished', {'a': 1, 'b': 2})
"""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from stmtflow.dag import _runner
from stmtflow.dag._spec import DagSpec, StepSpec
from stmtflow.dsl import (
    For,
    Go,
    If,
    Join,
    RetryPolicy,
    S,
    Section,
    Statement,
    Step,
    Try,
    WaitFor,
    WorkflowState,
    current_error,
    current_step,
)
from stmtflow.errors import DagFailed

__all__ = ["GROUP", "DagFailed", "DagWorkflow", "policy"]

GROUP = "steps"
"""The group of the step threads. The main thread's own statements are named ``dag.*``: a
step id holds no dot, so they never clash with a step's."""

ONCE = RetryPolicy(max_attempts=1)
"""The bookkeeping steps' policy: one attempt (their failure is final, whatever the engine's
default policy)."""


def policy(step: StepSpec) -> RetryPolicy:
    """The `RetryPolicy` of a file's ``retry`` (one attempt without one)."""
    return RetryPolicy(
        max_attempts=step.max_attempts,
        initial_interval=step.initial_interval,
        backoff_coefficient=2.0 if step.backoff == "exponential" else 1.0,
        max_interval=max(step.max_interval, step.initial_interval),
    )


def _json(step: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"step {step!r}: output is not JSON-ready: {exc}") from exc


class DagWorkflow(WorkflowState):
    """Base class of the classes `stmtflow.dag.load` builds; ``dag`` is the checked file."""

    model_config = ConfigDict(extra="forbid")  # data outside ``input`` is a mistake, not lost
    static_definition: ClassVar[bool] = True
    dag: ClassVar[DagSpec]

    input: dict[str, Any] = Field(default_factory=dict)
    """The run's input; every handler sees it under the key ``"input"``."""
    outputs: dict[str, Any] = Field(default_factory=dict)
    """Step id → the output of its handler (or of its fallback)."""
    failed: dict[str, str] = Field(default_factory=dict)
    """Step id → why it failed for good, or which dependency's failure skipped it."""
    run: str = Field(default_factory=lambda: uuid.uuid4().hex)
    """Tells this run's handlers in flight from any other's (`stmtflow.dag._runner`)."""
    queue: list[str] | None = None
    """The steps whose dependencies all settled, in the order they did (the steps without
    dependencies first, in file order); their threads start in this order. None for a run
    stored before steps were queued (every thread started at once)."""
    started: int = 0
    """How many steps of ``queue`` have their thread started."""
    open: list[str] = Field(default_factory=list)
    """The queued steps whose dependencies all succeeded and that have not settled: what a
    step's action starts ahead in the pool (`stmtflow.dag._runner`)."""

    @model_validator(mode="before")
    @classmethod
    def _queued(cls, data: Any) -> Any:
        """A new run queues the steps without dependencies; a stored old one keeps no queue."""
        if not isinstance(data, dict) or "queue" in data or "run" in data:
            return data
        dag: DagSpec | None = getattr(cls, "dag", None)
        roots = [s.id for s in dag.steps if not s.depends_on] if dag is not None else []
        return {**data, "queue": roots, "open": list(roots)}

    def definition(self) -> Section:
        if self.queue is None:
            return self._all_at_once()
        return S(
            For(
                "dag.start",
                lambda: self.started < len(self.dag.steps),
                WaitFor("dag.ready", self._queued_any, handler=self._take),
                Go("dag.step", self._step, id=self._next, arg=self._next, group=GROUP),
            ),
            Join("dag.join", GROUP),
            Step("dag.finish", self._finish, retry=ONCE),
        )

    def _all_at_once(self) -> Section:
        """The shape of runs stored before steps were queued: every step's thread at once,
        each waiting (``WaitFor {id}.ready``) until its dependencies settled."""
        return S(
            *(Go(f"{s.id}.go", self._legacy(s), id=s.id, group=GROUP) for s in self.dag.steps),
            Join("dag.join", GROUP),
            Step("dag.finish", self._finish, retry=ONCE),
        )

    def result(self) -> dict[str, Any]:
        """What a parent calling this DAG as a child receives: the outputs."""
        return dict(self.outputs)

    # -- starting the threads -------------------------------------------------------------------

    def _queued_any(self) -> bool:
        return self.started < len(self.queue or ())

    def _take(self) -> None:
        self.started += 1

    def _next(self) -> str:
        """The step whose thread the ``Go`` starts (the one ``_take`` just counted)."""
        assert self.queue is not None
        return self.queue[self.started - 1]

    def _step(self, step_id: str) -> Section:
        return self._branch(self.dag.by_id[step_id])

    # -- the statements of one step's thread ----------------------------------------------------

    def _branch(self, s: StepSpec) -> Section:
        undo = None if s.compensate is None else (lambda: self._compensate(s))
        work: Statement = Step(s.id, lambda: self._run(s), retry=policy(s), compensate=undo)
        if s.fallback is not None:
            rescue = Step(
                f"{s.id}.fallback", lambda: self._fallback(s), retry=ONCE, compensate=undo
            )
            work = Try(work).Catch(Exception, rescue)
        guarded = Try(work).Catch(Exception, Step(f"{s.id}.failed", lambda: self._fail(s)))
        return S(
            If(
                lambda: self._blocked(s) is not None, Step(f"{s.id}.skipped", lambda: self._skip(s))
            ).Else(guarded)
        )

    def _legacy(self, s: StepSpec) -> Section:
        if not s.depends_on:
            return self._branch(s)
        return S(WaitFor(f"{s.id}.ready", lambda: self._settled(s)), *self._branch(s).body)

    def _settled(self, s: StepSpec) -> bool:
        return all(d in self.outputs or d in self.failed for d in s.depends_on)

    def _blocked(self, s: StepSpec) -> str | None:
        return next((d for d in s.depends_on if d in self.failed), None)

    def _done(self, s: StepSpec) -> None:
        """``s`` settled: queue each dependent whose dependencies all settled now."""
        if self.queue is None:
            return
        if s.id in self.open:
            self.open.remove(s.id)
        for later in self.dag.dependents[s.id]:
            other = self.dag.by_id[later]
            if self._settled(other):
                self.queue.append(later)
                if self._blocked(other) is None:
                    self.open.append(later)

    def _ahead(self) -> list[StepSpec]:
        """The steps ready to run whose handlers a step's action starts ahead."""
        if self.queue is not None:
            return [self.dag.by_id[d] for d in self.open]
        return [
            other
            for other in self.dag.steps
            if other.id not in self.outputs
            and other.id not in self.failed
            and all(d in self.outputs for d in other.depends_on)
        ]

    def _inputs(self, s: StepSpec) -> dict[str, Any]:
        return {"input": self.input, **{d: self.outputs[d] for d in s.depends_on}}

    @property
    def _key(self) -> tuple[str, str]:
        return (current_step().workflow_id, self.run)

    # -- actions -------------------------------------------------------------------------------

    def _run(self, s: StepSpec) -> None:
        key = self._key
        for other in self._ahead():  # start every other ready step too: they run in parallel
            if other.id != s.id:
                _runner.start(key, other.id, other.handler, self._inputs(other), other.timeout)
        output = _runner.take(key, s.id, s.handler, self._inputs(s), s.timeout)
        self.outputs[s.id] = _json(s.id, output)
        self._done(s)

    def _fallback(self, s: StepSpec) -> None:
        assert s.fallback is not None
        output = _runner.take(self._key, f"{s.id}.fallback", s.fallback, self._inputs(s), s.timeout)
        self.outputs[s.id] = _json(s.id, output)
        self._done(s)

    def _compensate(self, s: StepSpec) -> None:
        assert s.compensate is not None
        inputs = {**self._inputs(s), s.id: self.outputs.get(s.id)}
        _runner.take(self._key, f"{s.id}.compensate", s.compensate, inputs, s.timeout)

    def _fail(self, s: StepSpec) -> None:
        error = current_error()
        self.failed[s.id] = "failed" if error is None else f"{error.type}: {error.message}"
        self._done(s)

    def _skip(self, s: StepSpec) -> None:
        self.failed[s.id] = f"skipped: {self._blocked(s)!r} failed"
        self._done(s)

    def _finish(self) -> None:
        _runner.forget(self._key)
        if self.failed:
            why = "; ".join(f"{step!r} {reason}" for step, reason in self.failed.items())
            raise DagFailed(
                f"{len(self.failed)} of {len(self.dag.steps)} steps did not complete: {why}"
            )

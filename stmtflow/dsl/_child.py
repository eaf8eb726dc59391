"""Child workflows: the `Child` handler, and the `Call` and `Start` statements built on it.

A child is an instance of another workflow type, started by the runtime for a parent. The
interpreter never starts one itself: it yields an effect (`stmtflow.core._effects.StartChild`)
that the `Engine` (or the `WorkflowHarness`) performs by creating the child's record in the same
commit as the parent checkpoint that armed it. When the child ends, its last write puts a
`ChildResult` in the parent's inbox, and the parent's next unit delivers it to the event.

The default child id is ``f"{parent_id}/{event}@{pc}"``: the parent's id, the event name (for
a `Call` named ``pay``, ``pay.child``; for a `Start`, its own name) and the ``pc`` the event
was armed with (for a `Start`, the ``pc`` at which the thread reached it). A setup that runs
again after a crash derives the same id, so it never starts a second child.

Example:
    >>> Call("pay", "Payment", {"amount": 12}).events[0].event
    'pay.child'
    >>> child_id("order-1", "pay.child", 7)
    'order-1/pay.child@7'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Union, cast

from pydantic import BaseModel, ConfigDict

from stmtflow.dsl._checks import name_problems, what
from stmtflow.dsl._handlers import Timer
from stmtflow.dsl._kind import Drawing, Exit, Site, duration_text, register, seconds
from stmtflow.dsl._step import Step, StepKind
from stmtflow.dsl._wait import On, Wait, WaitKind
from stmtflow.errors import StmtflowError
from stmtflow.state import CallbackRequest

if TYPE_CHECKING:
    from stmtflow.dsl._workflow import WorkflowState

__all__ = [
    "Call",
    "Child",
    "ChildResult",
    "OnParentEnd",
    "Start",
    "child_id",
    "workflow_type_name",
]

OnParentEnd = Literal["cancel", "abandon"]
ChildStatus = Literal["finished", "failed", "cancelled", "timed_out"]
ChildInput = Any
"""A dict, a model, None, or a zero-argument callable returning one (evaluated at setup)."""
WorkflowRef = Union[str, type["WorkflowState"]]  # noqa: UP007 - `type` is shadowed in handlers
"""A workflow class, or the type name it is registered under."""


def child_id(parent_id: str, event: str, pc: int) -> str:
    """The default id of the child an event armed at ``pc`` starts (see the module docstring)."""
    return f"{parent_id}/{event}@{pc}"


def workflow_type_name(workflow: str | type[WorkflowState]) -> str:
    """The type name a workflow is registered and stored under: a name as is; for a class,
    its ``workflow_name`` class attribute, else its class name."""
    if isinstance(workflow, str):
        return workflow
    name = getattr(workflow, "workflow_name", None)
    return name if isinstance(name, str) and name else workflow.__name__


def _workflow_problems(workflow: object) -> list[str]:
    from stmtflow.dsl._workflow import WorkflowState

    if isinstance(workflow, str) and workflow:
        return []
    if isinstance(workflow, type) and issubclass(workflow, WorkflowState):
        return []
    return [f"workflow must be a WorkflowState class or a type name, got {what(workflow)}"]


def _id_problems(id: object) -> list[str]:
    if id is None or callable(id) or (isinstance(id, str) and id):
        return []
    return [f"id must be a non-empty string or a callable, got {what(id)}"]


class ChildResult(BaseModel):
    """How a child ended, as its parent receives it.

    ``status`` is ``finished``, ``failed``, ``cancelled`` or (from a `Call` whose ``timeout``
    came first) ``timed_out``; ``output`` is what the child's ``result()`` method returned, or
    its data as JSON when it has none; ``error`` says why it failed.

    Example:
        >>> r = ChildResult(id="o-1/pay.child@3", workflow="Payment", status="finished", output=1)
        >>> r.ok, r.model_dump()["status"]
        (True, 'finished')
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """The child instance's id."""
    workflow: str
    """The child's workflow type name."""
    status: ChildStatus
    """How it ended (``timed_out``: the parent stopped waiting and cancelled it)."""
    output: Any = None
    """The child's ``result()``, or its data as JSON."""
    error: str | None = None
    """Why it failed (or was not finished), else None."""

    @property
    def ok(self) -> bool:
        """True when the child finished."""
        return self.status == "finished"


class Child:
    """A handler for `On` whose setup starts a child workflow; the event fires when it ends.

    ``workflow`` is a class or a registered type name; ``input`` the child's data (a dict, a
    model, or a zero-argument callable evaluated at setup); ``id`` the child's id (a string or
    a callable; default derived from the parent id, the event and the armed pc: `child_id`).
    The event is delivered with a `ChildResult`; ``result`` (optional) receives it. Torn down
    unfired (another event of the `Wait` won, the thread or the instance ended), the child is
    cancelled when ``on_parent_end="cancel"`` and left running when ``"abandon"``.

    Example:
        >>> Child("Payment", {"amount": 3}, on_parent_end="abandon").on_parent_end
        'abandon'
    """

    type = "Child"

    __slots__ = ("id", "input", "on_parent_end", "result", "workflow")

    def __init__(
        self,
        workflow: WorkflowRef,
        input: ChildInput = None,
        *,
        id: str | Callable[[], str] | None = None,
        on_parent_end: OnParentEnd = "cancel",
        result: Callable[[ChildResult], Any] | None = None,
    ) -> None:
        problems = _workflow_problems(workflow)
        if on_parent_end not in ("cancel", "abandon"):
            problems.append(f"on_parent_end must be 'cancel' or 'abandon', got {on_parent_end!r}")
        problems += _id_problems(id)
        if result is not None and not callable(result):
            problems.append(f"result must be callable, got {what(result)}")
        if problems:
            raise ValueError("invalid Child: " + "; ".join(problems))
        self.workflow = workflow
        self.input = input
        self.id = id
        self.on_parent_end: OnParentEnd = on_parent_end
        self.result = result

    @property
    def type_name(self) -> str:
        """The child's workflow type name."""
        return workflow_type_name(self.workflow)

    def setup(self, req: CallbackRequest) -> str:
        """Starting a child is the runtime's: the interpreter hands it over instead of calling
        this (which only explains that)."""
        raise StmtflowError(needs_runtime(f"event {req.name!r}"))

    def handle(self, req: CallbackRequest, input: Any) -> ChildResult:
        """The child ended: ``input`` is its `ChildResult` (or its JSON); ``result`` gets it."""
        outcome = input if isinstance(input, ChildResult) else ChildResult.model_validate(input)
        if self.result is not None:
            self.result(outcome)
        return outcome

    def teardown(self, req: CallbackRequest, handled: bool) -> None:
        """Cancelling an unfired child is the runtime's, as starting it is (see `setup`)."""
        raise StmtflowError(needs_runtime(f"event {req.name!r}"))


def needs_runtime(what: str) -> str:
    """The message for a child statement driven without a runtime."""
    return (
        f"{what} starts a child workflow, which needs a runtime to store it: run this workflow "
        "with stmtflow.Engine, or test it with stmtflow.testing.WorkflowHarness (plain "
        "resume/handle_callback cannot start children)"
    )


class _Timeout(Timer):
    """A `Call`'s timeout: a timer whose firing hands ``result`` a ``timed_out`` result."""

    __slots__ = ("child", "child_event")

    def __init__(self, delay: timedelta, child: Child, child_event: str) -> None:
        super().__init__(seconds=delay.total_seconds())
        self.child = child
        self.child_event = child_event

    def handle(self, req: CallbackRequest, input: Any) -> None:
        """The timeout came first: the child (cancelled by its event's teardown) timed out."""
        child = self.child
        if isinstance(child.id, str):
            ident = child.id
        elif child.id is not None:
            ident = str(child.id())
        else:
            ident = child_id(req.workflow_id, self.child_event, req.pc)
        outcome = ChildResult(
            id=ident,
            workflow=child.type_name,
            status="timed_out",
            error=f"no result within {duration_text(self.delay)}",
        )
        if child.result is not None:
            child.result(outcome)


@dataclass(frozen=True, slots=True, init=False)
class Call(Wait):
    """Start a child workflow and wait for it: a `Wait` on the child's end (event
    ``f"{name}.child"``) and, with ``timeout``, a timer (event ``f"{name}.timeout"``).

    ``result(child_result)`` (usually a method of the workflow) receives the `ChildResult`; when
    the timeout comes first the child is cancelled and ``result`` receives one with status
    ``timed_out``. ``input`` and ``id`` are as for `Child`.

    Example:
        >>> call = Call("pay", "Payment", {"amount": 3}, timeout=timedelta(minutes=5))
        >>> [on.event for on in call.events], isinstance(call, Wait)
        (['pay.child', 'pay.timeout'], True)
    """

    workflow: Any = field(compare=False)
    input: ChildInput = field(compare=False, repr=False)
    id: Any = field(compare=False, repr=False)
    result: Callable[[ChildResult], Any] | None = field(compare=False, repr=False)
    timeout: timedelta | None
    _built: tuple[On, ...] | None = field(compare=False, repr=False)

    def __init__(
        self,
        name: str,
        workflow: str | type[WorkflowState],
        input: ChildInput = None,
        *,
        id: str | Callable[[], str] | None = None,
        result: Callable[[ChildResult], Any] | None = None,
        timeout: timedelta | None = None,
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "workflow", workflow)
        object.__setattr__(self, "input", input)
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "result", result)
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "_built", None)

    @property
    def child_event(self) -> str:
        """The event the child's end is delivered to: ``f"{name}.child"``."""
        return f"{self.name}.child"

    @property
    def timeout_event(self) -> str:
        """The timeout's event: ``f"{name}.timeout"``."""
        return f"{self.name}.timeout"


def _call_events(self: Call) -> tuple[On, ...]:
    """A call's events, built on first use; empty while its arguments are invalid (the
    definition check reports them)."""
    built = self._built
    if built is None:
        built = ()
        if not _call_problems(self):
            child = Child(self.workflow, self.input, id=self.id, result=self.result)
            built = (On(self.child_event, child),)
            if self.timeout is not None:
                timer = _Timeout(self.timeout, child, self.child_event)
                built += (On(self.timeout_event, timer),)
        object.__setattr__(self, "_built", built)
    return built


# Attached after the class is made, as `Sleep.events` is (see stmtflow.dsl._wait).
Call.events = property(_call_events)  # type: ignore[assignment, misc]


def _call_problems(stmt: Call) -> list[str]:
    problems = _workflow_problems(stmt.workflow)
    problems += _id_problems(stmt.id)
    if stmt.result is not None and not callable(stmt.result):
        problems.append(f"result must be callable, got {what(stmt.result)}")
    timeout = stmt.timeout
    if timeout is not None and not (isinstance(timeout, timedelta) and timeout > timedelta(0)):
        problems.append(f"timeout must be a positive timedelta or None, got {what(timeout)}")
    return problems


def _ignore(child_id: str) -> None:
    """A `Start` without ``result``: nothing to hand the child's id to."""


@dataclass(frozen=True, slots=True, init=False)
class Start(Step):
    """Start a child workflow and go on at once (fire and forget, idempotent).

    The child outlives the parent; its id goes to ``result(child_id)``. A thread stands at a
    `Start` as at a `Step` whose action is ``result``: the child's record is created in the
    commit of that step's checkpoint, with the id ``f"{parent_id}/{name}@{pc}"`` (``pc``: where
    the thread reached the statement) unless ``id`` is given, so a repeated step after a crash
    finds the child it started.

    Example:
        >>> Start("mail", "Email", {"to": "a@example.com"}).workflow
        'Email'
    """

    workflow: Any = field(compare=False)
    input: ChildInput = field(compare=False, repr=False)
    id: Any = field(compare=False, repr=False)

    def __init__(
        self,
        name: str,
        workflow: str | type[WorkflowState],
        input: ChildInput = None,
        *,
        id: str | Callable[[], str] | None = None,
        result: Callable[[str], Any] | None = None,
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "action", _ignore if result is None else result)
        object.__setattr__(self, "retry", None)
        object.__setattr__(self, "workflow", workflow)
        object.__setattr__(self, "input", input)
        object.__setattr__(self, "id", id)


class CallKind(WaitKind):
    statement: ClassVar[type] = Call

    def child_path(self, stmt: Wait, index: int, kid: object, path: str) -> str:
        return f"{path} (its {'child' if index == 0 else 'timeout'} event)"

    def problems(self, stmt: Wait, site: Site) -> list[str]:
        assert isinstance(stmt, Call)
        return name_problems(stmt.name) + _call_problems(stmt)

    def json(self, stmt: Wait, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        assert isinstance(stmt, Call)
        return {
            "type": self.label,
            "name": stmt.name,
            "workflow": _type_text(stmt.workflow),
            "timeout": seconds(stmt.timeout),
            "result": stmt.result is not None,
        }

    def draw(self, stmt: Wait, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        assert isinstance(stmt, Call)
        label = f"Call {stmt.name}\n→ {_type_text(stmt.workflow)}"
        head = drawing.box(entry, label, "call", stmt.name)
        exits = [Exit(head, "ended", stmt.child_event)]
        if stmt.timeout is not None:
            timeout = f"after {duration_text(stmt.timeout)}"
            exits.append(Exit(head, f"{stmt.timeout_event} · {timeout}", stmt.timeout_event))
        return exits


class StartKind(StepKind):
    statement = Start  # type: ignore[assignment]  # a Start is a Step

    def problems(self, stmt: Step, site: Site) -> list[str]:
        assert isinstance(stmt, Start)
        problems = name_problems(stmt.name) + _workflow_problems(stmt.workflow)
        problems += _id_problems(stmt.id)
        if not callable(stmt.action):
            problems.append(f"result must be callable, got {what(stmt.action)}")
        return problems

    def json(self, stmt: Step, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        assert isinstance(stmt, Start)
        return {
            "type": self.label,
            "name": stmt.name,
            "workflow": _type_text(stmt.workflow),
            "result": cast(object, stmt.action) is not _ignore,
        }

    def draw(self, stmt: Step, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        assert isinstance(stmt, Start)
        label = f"Start {stmt.name}\n⇢ {_type_text(stmt.workflow)}"
        return [Exit(drawing.box(entry, label, "call", stmt.name))]


def _type_text(workflow: object) -> str:
    if isinstance(workflow, str | type):
        return workflow_type_name(workflow)
    return repr(workflow)


register(CallKind())
register(StartKind())

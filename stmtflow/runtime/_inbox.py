"""The engine's checks before it stores something for later: buffered events, child types.

A buffered event (`Engine.send` with ``buffer=True``) is checked as far as it can be before
any wait arms it — the instance's definition has the event, its input fits the handler's
schema — and then kept as a `Message` in the instance's inbox. Child types named by a
definition are checked when an instance is started, before anything is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic_core import PydanticSerializationError, to_json

from stmtflow.analysis import walk
from stmtflow.core._program import Program
from stmtflow.dsl._child import Call, Child, Start
from stmtflow.dsl._handlers import FunctionHandler
from stmtflow.dsl._section import Section
from stmtflow.dsl._wait import On
from stmtflow.errors import CallbackInputError, StmtflowError, UnknownCallback, WorkflowFinished
from stmtflow.state import TERMINAL_STATUSES, CallbackRequest, load_state
from stmtflow.stores.base import Message

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine

__all__ = ["buffer_event", "unknown_children"]


def buffer_event(
    engine: Engine, id: str, event: str, input: Any, thread_id: str | None, key: str | None
) -> None:
    """Keep ``event`` in instance ``id``'s inbox until a wait arms it (checked first: nothing is
    stored for an event the definition lacks, an input that does not fit, an ended instance)."""
    rec = engine.store.get(id)
    cls = engine.workflow_class(rec.workflow)
    where = f"workflow {id!r} ({rec.workflow})"
    state = load_state(rec.state)
    if state.status in TERMINAL_STATUSES:
        raise WorkflowFinished(f"{where} is {state.status.value}; event {event!r} cannot be kept")
    wf = cls.model_validate_json(rec.data)
    program = Program(wf.definition(), cls, where)
    if program.find_event(event) is None:
        raise UnknownCallback(f"{where} has no event {event!r} to keep for later")
    handler = program.handler(event)
    req = CallbackRequest(workflow_id=id, thread_id=thread_id or "", name=event)
    if isinstance(handler, FunctionHandler):
        handler.parse(req, input)
    try:
        text = to_json(input).decode()
    except PydanticSerializationError as exc:
        raise CallbackInputError(
            f"{where}: the input of event {event!r} is not JSON", [str(exc)]
        ) from exc
    message = Message(
        to=id, event=event, thread_id=thread_id or "", input=text, key=key, buffered=True
    )
    if engine.store.post(message):
        engine._follow_up([(id, None)])


def unknown_children(engine: Engine, root: Section, where: str) -> None:
    """Refuse a definition whose `Call`, `Start` or `Child` names a type not registered."""
    for stmt in walk(root):
        if isinstance(stmt, Call | Start):
            workflow, name = stmt.workflow, f"{type(stmt).__name__} {stmt.name!r}"
        elif isinstance(stmt, On) and isinstance(stmt.handler, Child):
            workflow, name = stmt.handler.workflow, f"the Child of event {stmt.event!r}"
        else:
            continue
        try:
            engine.workflow_class(workflow)
        except StmtflowError as exc:
            raise StmtflowError(f"{where}, {name}: {exc}") from exc

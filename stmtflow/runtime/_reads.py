"""What the engine answers when asked: an `Instance`, its `PendingEvent` list, `WorkerStats`.

These are read models: plain frozen values built from a stored record, for callers to look at.
Nothing here writes to a store or runs workflow code (a definition is built to find the event
handlers' input schemas, nothing more).

Example:
    >>> import stmtflow as sf
    >>> class Approval(sf.WorkflowState):
    ...     def definition(self) -> sf.Section:
    ...         return sf.S(sf.Wait("decide", sf.OnEvent("approve", lambda who: None)))
    >>> wf, state = Approval(), sf.new_state("a-1", "Approval")
    >>> _ = sf.resume(wf, state)
    >>> [(p.name, p.thread_id, p.type) for p in pending_events(wf, state)]
    [('approve', '_main_', 'FunctionHandler')]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stmtflow.core._bodies import Bodies
from stmtflow.core._program import Program
from stmtflow.core._timers import timer_deadline
from stmtflow.dsl._human import asked
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.state import TERMINAL_STATUSES, State, ThreadStatus, WorkflowStatus

__all__ = ["Instance", "PendingEvent", "WorkerStats", "pending_events"]


@dataclass(frozen=True, slots=True)
class Instance:
    """A stored workflow instance, loaded.

    Attributes:
        id: the instance id.
        workflow: the workflow type name.
        status: where the execution stands.
        data: the workflow data (an instance of the registered class).
        state: the execution state.
        version: the record's version (+1 per write).
        wake_at: when the engine will next wake it (a timer or a retry), if ever.
        error: the last error, if any (a failed step, or an error the engine met running it).
        parent_id: the instance that started this one as a child, or None.
        root_id: the top of its tree of parents (its own id when no parent started it).
    """

    id: str
    workflow: str
    status: WorkflowStatus
    data: WorkflowState
    state: State
    version: int
    wake_at: datetime | None
    error: str | None
    parent_id: str | None = None
    root_id: str | None = None


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event an instance waits for.

    Attributes:
        name: the event name to send.
        thread_id: the waiting thread.
        type: the handler type (``FunctionHandler``, ``Timer``, ...).
        input_schema: JSON Schema of the input (for function handlers), else None.
        deadline: when a timer fires, else None.
        status: the event's setup status (``setup``, ``setup_error``, ...).
        prompt: for an event a person answers (a `HumanInput`, a step's escalation), what is
            asked; an escalation's says which step failed, how often and with what error.
        assignee: who is asked, if anyone in particular.
    """

    name: str
    thread_id: str
    type: str
    input_schema: dict[str, Any] | None
    deadline: datetime | None
    status: str
    prompt: str | None = None
    assignee: str | None = None


@dataclass(slots=True)
class WorkerStats:
    """Counters a worker keeps (shown by ``stmtflow worker``)."""

    processed: int = 0
    """Instances a tick worked on."""
    fired: int = 0
    """Timers fired, retries run and crashed work recovered."""
    failed: int = 0
    """Units that ended in an error (recorded on the instance)."""
    last_error: str | None = None


def pending_events(wf: WorkflowState, state: State) -> list[PendingEvent]:
    """The events ``state``'s threads wait for, in thread order (none once it ended).

    An event fired but not yet entered (``cur_callback`` set) is no longer pending.
    """
    if state.status in TERMINAL_STATUSES:
        return []
    program = Program(wf.definition(), type(wf), f"workflow {state.id!r}")
    bodies = Bodies(program, type(wf))
    events = []
    for thread in state.threads:
        if thread.status is not ThreadStatus.WAITING_EVENT or thread.cur_callback:
            continue
        program = bodies.of(thread)  # its own body, when built from its arg
        for event in thread.wait_events:
            found = program.find_event(event.req.name)
            schemas = getattr(found[1].handler, "schemas", None) if found else None
            schema = schemas()[0] if callable(schemas) else None
            question = asked(event)
            events.append(
                PendingEvent(
                    name=event.req.name,
                    thread_id=thread.id,
                    type=event.type,
                    input_schema=schema,
                    deadline=timer_deadline(event),
                    status=event.status.value,
                    prompt=None if question is None else question.prompt,
                    assignee=None if question is None else question.assignee,
                )
            )
    return events

"""What people are asked for in one instance: the `PendingInput` rows written with its state.

Whoever stores a state stores its rows with it. The engine creates an instance with a fresh
state (no rows); a unit of work notes, when it opens, which threads wait on a person-facing
event (`stmtflow.dsl._human.PERSON_FACING`: a `HumanInput`, an escalated step) and the very
events they wait on (`Asking`), and before each write it looks again. Events are frozen values
that a change replaces, so an unchanged set is recognised by identity, at the cost of one look
per asking thread, and only a write that changed it carries the rows (``inputs=``) that replace
the instance's set in the store's index, in the same commit as the state. A caller that stores
a state of its own (the test harness) gets its rows from `inputs_of`.

Example:
    >>> import stmtflow as sf
    >>> from stmtflow.core._thread_index import ThreadIndex
    >>> state = sf.new_state("a-1", "Approval")
    >>> asking(state, ThreadIndex(state.threads))
    ()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from stmtflow.core._bodies import Bodies
from stmtflow.core._program import Program
from stmtflow.core._thread_index import ThreadIndex
from stmtflow.core._timers import timer_deadline
from stmtflow.dsl._human import asked
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.state import TERMINAL_STATUSES, State, WaitEvent
from stmtflow.stores import PendingInput

__all__ = ["Asking", "asking", "inputs_of", "pending_inputs", "same_asking", "schemas_in"]

Asking: TypeAlias = tuple[tuple[str, tuple[WaitEvent, ...]], ...]
"""Each asking thread's id and the events it waits on, in thread order."""


def asking(state: State, index: ThreadIndex) -> Asking:
    """The threads of ``state`` (filed by ``index``) that wait on a person; none once ended."""
    threads = index.asking()
    if not threads or state.status in TERMINAL_STATUSES:
        return ()  # the common case, before every write of every unit: no tuple built
    return tuple((thread.id, thread.wait_events) for thread in threads)


def same_asking(now: Asking, before: Asking) -> bool:
    """Whether the same threads wait on the very same events (compared by identity)."""
    if len(now) != len(before):
        return False
    for (now_id, now_events), (before_id, before_events) in zip(now, before, strict=True):
        if now_id != before_id or now_events is not before_events:
            return False
    return True


def pending_inputs(
    state: State, threads: Asking, schema_of: Callable[[str, WaitEvent], dict[str, Any]]
) -> list[PendingInput]:
    """The rows of ``threads``' person-facing events that are set up (a question is asked only
    once its setup recorded it). ``schema_of(thread_id, event)`` gives an armed event's input
    JSON Schema; a
    row's deadline is the earliest armed timer of the same wait."""
    rows = []
    for thread_id, events in threads:
        deadline = min((d for e in events if (d := timer_deadline(e)) is not None), default=None)
        for event in events:
            question = asked(event)
            if question is None:
                continue
            rows.append(
                PendingInput(
                    instance_id=state.id,
                    event=event.req.name,
                    thread_id=thread_id,
                    prompt=question.prompt,
                    assignee=question.assignee,
                    input_schema=schema_of(thread_id, event),
                    asked_at=question.asked_at,
                    deadline=deadline,
                    workflow=state.workflow,
                )
            )
    return rows


def schemas_in(state: State, bodies: Bodies) -> Callable[[str, WaitEvent], dict[str, Any]]:
    """An event's input JSON Schema, from its handler in the program its thread of ``state``
    moves through (the definition, or a body built from the thread's arg: `Bodies.of`);
    ``{}``: any input."""
    threads = {thread.id: thread for thread in state.threads}

    def schema_of(thread_id: str, event: WaitEvent) -> dict[str, Any]:
        program = bodies.of(threads[thread_id])
        schemas = getattr(program.handler(event.req.name), "schemas", None)
        return schemas()[0] if callable(schemas) else {}

    return schema_of


def inputs_of(wf: WorkflowState, state: State) -> list[PendingInput]:
    """The rows of any state, for a caller storing one itself (`Store.create` ``inputs=``)."""
    program = Program(wf.definition(), type(wf), f"workflow {state.id!r} ({state.workflow})")
    bodies = Bodies(program, type(wf))
    threads = asking(state, ThreadIndex(state.threads))
    return pending_inputs(state, threads, schemas_in(state, bodies))

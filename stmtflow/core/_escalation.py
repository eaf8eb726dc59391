"""Escalation at run time: a step's thread handed to an operator, and the operator's answer.

The interpreter calls `escalate` where a step's failure is final under
``RetryPolicy(on_exhausted="escalate")``, and `answer` when the step's ``{step}.escalation``
event is delivered (its handler, `stmtflow.dsl._escalation.Escalation`, parsed the action).
Both only change the thread; the interpreter files it again and sets the workflow's status
(`answer` says which: ``failed`` for ``fail``, else ``resuming``).

Example:
    >>> from datetime import UTC, datetime
    >>> from stmtflow.state import Thread, ThreadStatus
    >>> t = Thread(id="_main_", name="_main_", status=ThreadStatus.EXECUTING, cur_step="book",
    ...            attempt=3, last_error="ConnectionError: down", pc=7)
    >>> escalate(t, "inv-1", datetime(2026, 1, 1, tzinfo=UTC))
    >>> t.status.value, [e.req.name for e in t.wait_events]
    ('waiting_event', ['book.escalation'])
    >>> answer(t, "retry"), t.status.value, t.attempt
    (False, 'executing', 0)
"""

from __future__ import annotations

from datetime import datetime

from stmtflow.dsl._escalation import ESCALATION, Action, escalation_event
from stmtflow.dsl._human import asked_data
from stmtflow.state import CallbackRequest, Thread, ThreadStatus, WaitEvent, WaitEventStatus

__all__ = ["answer", "escalate", "failure"]


def escalate(thread: Thread, workflow_id: str, now: datetime) -> None:
    """Leave ``thread`` at its step, waiting for an operator on ``f"{step}.escalation"``.

    Its failed attempts and last error stay on it: they are why it waits, and the prompt says
    so. The event needs no setup: it is armed as set up, asked at ``now``, with the thread's pc.
    """
    prompt = (
        f"step {thread.cur_step!r} failed after {thread.attempt} attempt(s): "
        f"{thread.last_error}; retry, skip or fail it?"
    )
    req = CallbackRequest(
        workflow_id=workflow_id,
        thread_id=thread.id,
        name=escalation_event(thread.cur_step),
        pc=thread.pc,
        setup_data=asked_data(prompt, None, now),
    )
    thread.retry_at = None
    thread.status = ThreadStatus.WAITING_EVENT
    thread.wait_events = (WaitEvent(type=ESCALATION.type, req=req, status=WaitEventStatus.SETUP),)


def answer(thread: Thread, action: Action | str) -> bool:
    """Move ``thread`` as the operator chose; True when the workflow is to fail.

    ``retry``: the step runs again with a fresh set of attempts (its last error stays until it
    succeeds); ``skip``: the thread moves on as if the step had succeeded; ``fail``: the thread
    stays at the step, as after any final failure, so ``restart`` can rerun it.
    """
    thread.wait_events = ()
    thread.retry_at = None
    if action == "skip":
        thread.status = ThreadStatus.RESUMING
        thread.attempt = 0
        thread.last_error = None
        return False
    thread.status = ThreadStatus.EXECUTING
    if action == "retry":
        thread.attempt = 0
        return False
    return True


def failure(thread: Thread, who: str) -> str:
    """The workflow's error when an operator failed ``thread``'s step (``who`` names them)."""
    return (
        f"step {thread.cur_step!r} ({who}) failed after {thread.attempt} attempt(s): "
        f"{thread.last_error}; an operator chose to fail it"
    )

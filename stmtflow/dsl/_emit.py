"""`emit`: publish a message from a step action, committed with the step's checkpoint.

The message is not sent from inside the action: the engine keeps what a successful action
emitted and writes it to the store's outbox in the same commit as the step's progress, then
delivers it to its sinks (DESIGN §8, docs/operations.md "Outbox"). An action that fails emits
nothing; an action that runs again after a crash emits messages with the same keys.

This module only checks the arguments and hands them to whoever runs the action: the engine's
unit of work sets `emitter_var` around each step action (`stmtflow.runtime._outbox`). Outside
a step action, or in a step run by plain `resume` (which keeps no outbox), `emit` raises.

Example:
    >>> import stmtflow as sf
    >>> from stmtflow.testing import WorkflowHarness
    >>> class Pay(sf.WorkflowState):
    ...     def definition(self):
    ...         return sf.S(sf.Step("charge", self.charge))
    ...     def charge(self):
    ...         sf.emit("payments.charged", {"amount": 3})
    >>> h = WorkflowHarness(Pay, id="pay-1").start()
    >>> [(m.topic, m.value, m.key) for m in h.emitted]
    [('payments.charged', {'amount': 3}, 'pay-1/_main_/charge/1/0')]
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any, Protocol

from pydantic import BaseModel

from stmtflow.dsl._context import step_var
from stmtflow.errors import OutboxError

__all__ = ["Emitter", "emit", "emitter_var"]


class Emitter(Protocol):
    """What collects the messages of one running step action (set by the engine)."""

    def emit(self, topic: str, payload: str) -> str:
        """Keep a message (``payload`` as JSON text); returns its key."""
        ...


emitter_var: ContextVar[Emitter | None] = ContextVar("stmtflow_emitter", default=None)
"""Set by the engine around each step action it runs (None elsewhere)."""


def emit(topic: str, payload: Any = None) -> str:
    """Record a message for ``topic``, sent once the running step's checkpoint is committed.

    Args:
        topic: what the message is about (a non-empty string; sinks may route by it).
        payload: any JSON value (dicts, lists, strings, numbers, booleans, None), or a
            pydantic model (sent as its JSON).

    Returns:
        The message's key: ``"<instance>/<thread>/<step>/<step pc>/<n>"`` for the n-th
        message (from 0) of this step execution; the same when the step runs again after a
        crash, so consumers can deduplicate by it.

    Raises:
        OutboxError: called outside a running step action, in a step that plain ``resume``
            runs (no engine, no outbox), with a bad topic, with a payload that is not JSON, or
            on a store that keeps no outbox. Raised inside the action, the step fails like any
            action error and nothing it emitted is kept.
    """
    running = step_var.get()
    if running is None:
        raise OutboxError(f"emit({topic!r}) was called outside a running step action")
    workflow_id, thread_id, step, _, _ = running
    where = f"emit({topic!r}) in step {step!r} (workflow {workflow_id!r}, thread {thread_id!r})"
    emitter = emitter_var.get()
    if emitter is None:
        raise OutboxError(
            f"{where}: this step is not run by an Engine, so there is no outbox to keep the "
            "message; run the workflow with an Engine or a WorkflowHarness"
        )
    if not isinstance(topic, str) or not topic:
        raise OutboxError(f"{where}: the topic must be a non-empty string, got {topic!r}")
    return emitter.emit(topic, _json(payload, where))


def _json(payload: Any, where: str) -> str:
    if isinstance(payload, BaseModel):
        return payload.model_dump_json()
    try:
        return json.dumps(payload, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise OutboxError(
            f"{where}: the payload is not JSON-serialisable ({exc}); emit dicts, lists, "
            "strings, numbers, booleans, None or a pydantic model"
        ) from exc

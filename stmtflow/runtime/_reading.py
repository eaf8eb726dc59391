"""The `Engine`'s reads: instances, their children, what they wait for, what people are asked.

A mixin of `Engine` (`Reading`), so the facade stays one page. Each read loads stored records
and answers with the read models of `stmtflow.runtime._reads`; nothing here writes.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from stmtflow.dsl._workflow import WorkflowState
from stmtflow.runtime._reads import Instance, PendingEvent, pending_events
from stmtflow.state import State, WorkflowStatus, load_state
from stmtflow.stores import PendingInput, Record, Store

__all__ = ["Reading"]


class Reading:
    """`get`, `list`, `children`, `pending`, `inputs`: the `Engine` methods that read."""

    store: Store
    _classes: dict[str, type[WorkflowState]]

    if TYPE_CHECKING:

        def workflow_class(self, workflow: str | type[WorkflowState]) -> type[WorkflowState]: ...

    def _load(self, rec: Record) -> tuple[WorkflowState, State]:
        cls = self.workflow_class(rec.workflow)
        return cls.model_validate_json(rec.data), load_state(rec.state)

    def _instance(self, rec: Record) -> Instance:
        wf, state = self._load(rec)
        return Instance(
            id=rec.id,
            workflow=rec.workflow,
            status=WorkflowStatus(rec.status),
            data=wf,
            state=state,
            version=rec.version,
            wake_at=rec.wake_at,
            error=rec.error,
            parent_id=rec.parent_id,
            root_id=rec.root_id or rec.id,
        )

    def get(self, id: str) -> Instance:
        """The stored instance. Raises `NotFound` for an unknown id."""
        return self._instance(self.store.get(id))

    def list(
        self,
        status: str | WorkflowStatus | None = None,
        workflow: str | None = None,
        *,
        parent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> builtins.list[Instance]:
        """Stored instances, oldest first, optionally filtered by status, type and the parent
        that started them; ``offset`` and ``limit`` take a page of them (only the page's
        records are parsed)."""
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError(f"offset and limit must not be negative, got {offset}, {limit}")
        value = WorkflowStatus(status).value if status is not None else None
        cap = None if limit is None else offset + limit
        records = self.store.list(status=value, workflow=workflow, limit=cap, parent_id=parent_id)
        return [self._instance(r) for r in records[offset:]]

    def workflows(self) -> dict[str, type[WorkflowState]]:
        """The registered workflow classes, by type name."""
        return dict(self._classes)

    def children(self, id: str) -> builtins.list[Instance]:
        """The instances ``id`` started (`Child`, `Call`, `Start`), oldest first."""
        return self.list(parent_id=id)

    def pending(self, id: str) -> builtins.list[PendingEvent]:
        """The events instance ``id`` waits for, with input schemas and timer deadlines."""
        return pending_events(*self._load(self.store.get(id)))

    def inputs(
        self, *, assignee: str | None = None, workflow: str | None = None
    ) -> builtins.list[PendingInput]:
        """What people are asked for, across all instances: a `PendingInput` per `HumanInput`
        event a waiting thread has armed (an `Ask` is one) and per escalated step waiting for
        an operator; only those for ``assignee`` or of ``workflow`` when given. Oldest question
        first. Served from the store's index, written in the same commit as each state; no
        state is read. Answer one with ``send(row.instance_id, row.event, input,
        thread_id=row.thread_id)``."""
        return self.store.inputs(assignee=assignee, workflow=workflow)

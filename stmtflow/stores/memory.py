"""An in-process store: a dict behind a lock, with exactly the semantics of the durable ones.

Nothing survives the process; use it in tests, the in-memory harness and examples.

Example:
    >>> from stmtflow.stores.base import Record
    >>> store = MemoryStore()
    >>> store.create(Record(id="a", workflow="Order", data="{}", state="{}")).version
    1
"""

from __future__ import annotations

import builtins
import dataclasses
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from stmtflow.errors import ConflictError, NotFound
from stmtflow.stores._inputs import PendingInput, check_inputs, matching
from stmtflow.stores._memory_history import MemoryHistory
from stmtflow.stores._memory_locks import MemoryLocks
from stmtflow.stores._memory_outbox import MemoryOutbox
from stmtflow.stores._schedules import MemorySchedules, ScheduleRow
from stmtflow.stores.base import (
    NO_BATCH,
    Batch,
    Message,
    Record,
    Store,
    aware,
    check_claim_args,
    claim_order,
    free_lease,
    lease_conflict,
    refusal,
    status_value,
    utcnow,
    with_changes,
)

__all__ = ["MemoryStore"]


class MemoryStore(MemoryOutbox, MemoryHistory, MemorySchedules, MemoryLocks, Store):
    """A `Store` kept in a dict; every operation holds one lock, so each is atomic.

    Example:
        >>> from datetime import timedelta
        >>> from stmtflow.stores.base import Record, utcnow
        >>> store = MemoryStore()
        >>> _ = store.create(Record(id="a", workflow="Order", data="{}", state="{}"))
        >>> store.claim("a", "me", timedelta(seconds=5)).fence
        1
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, Record] = {}
        self._targets: dict[str, str] = {}
        self._inbox: dict[str, dict[int, Message]] = {}
        """Each instance's messages by seq (``done`` ones only while they carry a key)."""
        self._seq = 0
        self._outbox_init()
        self._inputs: dict[str, tuple[PendingInput, ...]] = {}
        """Each instance's pending-input rows (instances without any are left out)."""
        self._init_history()
        self._schedules: dict[str, ScheduleRow] = {}
        self._init_locks()

    def _current(self, id: str) -> Record:
        try:
            record = self._records[id]
        except KeyError:
            raise NotFound(f"no workflow instance with id {id!r}") from None
        return self._with_inbox(record)

    def _with_inbox(self, record: Record) -> Record:
        inbox = any(m.status != "done" for m in self._inbox.get(record.id, {}).values())
        return record if record.inbox == inbox else with_changes(record, inbox=inbox)

    def create(self, record: Record, *, inputs: Sequence[PendingInput] | None = None) -> Record:
        rows = check_inputs(record.id, inputs or ())
        with self._lock:
            if record.id in self._records:
                raise ConflictError(f"a workflow instance with id {record.id!r} already exists")
            stored = self._create(record, utcnow())
            if rows:
                self._inputs[record.id] = rows
            return stored

    def _create(self, record: Record, now: datetime) -> Record:
        stored = with_changes(
            record,
            version=1,
            fence=1 if record.lease_owner is not None else 0,
            created_at=record.created_at or now,
            updated_at=now,
            root_id=record.root_id or record.id,
            inbox=False,
        )
        self._records[record.id] = stored
        return stored

    def get(self, id: str) -> Record:
        with self._lock:
            return self._current(id)

    def list(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int | None = None,
        *,
        parent_id: str | None = None,
    ) -> builtins.list[Record]:
        wanted = None if status is None else status_value(status)
        with self._lock:
            found = [
                self._with_inbox(r)
                for r in self._records.values()
                if (wanted is None or r.status == wanted)
                and (workflow is None or r.workflow == workflow)
                and (parent_id is None or r.parent_id == parent_id)
            ]
        found.sort(key=lambda r: (r.created_at, r.id))
        return found if limit is None else found[:limit]

    # -- inboxes ----------------------------------------------------------------------------

    def _post(self, message: Message) -> bool:
        """Keep ``message`` in its instance's inbox; False for a missing instance or a known key."""
        if message.to not in self._records:
            return False
        box = self._inbox.setdefault(message.to, {})
        if message.key is not None and any(m.key == message.key for m in box.values()):
            return False
        self._seq += 1
        box[self._seq] = dataclasses.replace(message, seq=self._seq, status="new")
        return True

    def _apply(self, id: str, batch: Batch, now: datetime) -> None:
        """Apply ``batch`` for a write of instance ``id`` (under the lock, after the write)."""
        for child in batch.create:
            if child.id not in self._records:
                self._create(child, now)
        for message in batch.post:
            self._post(message)
        box = self._inbox.get(id, {})
        for seq in batch.take:
            taken = box.get(seq)
            if taken is None:
                continue
            if taken.key is None:
                del box[seq]
            else:
                box[seq] = dataclasses.replace(taken, status="done")
        for seq in batch.keep:
            kept = box.get(seq)
            if kept is not None and kept.status == "new":
                box[seq] = dataclasses.replace(kept, status="kept")
        for key in batch.keys:
            self._post(Message(to=id, key=key))
            done = next(m for m in self._inbox[id].values() if m.key == key)
            self._inbox[id][done.seq] = dataclasses.replace(done, status="done")
        self._emit(batch.emit, now)
        if batch.locks is not None:
            for message in self._apply_locks(id, batch.locks):
                self._post(message)

    def post(self, message: Message) -> bool:
        with self._lock:
            self._current(message.to)
            return self._post(message)

    def inbox(self, id: str) -> builtins.list[Message]:
        with self._lock:
            box = self._inbox.get(id, {})
            return [box[seq] for seq in sorted(box) if box[seq].status != "done"]

    def known_key(self, id: str, key: str) -> bool:
        with self._lock:
            return any(m.key == key for m in self._inbox.get(id, {}).values())

    def update(
        self,
        record: Record,
        *,
        expected_version: int,
        fence: int | None = None,
        release: bool = False,
        batch: Batch = NO_BATCH,
        inputs: Sequence[PendingInput] | None = None,
    ) -> Record:
        now = utcnow()
        rows = None if inputs is None else check_inputs(record.id, inputs)
        with self._lock:
            current = self._current(record.id)
            if current.version != expected_version or (
                fence is not None and (current.fence != fence or current.lease_owner is None)
            ):
                raise refusal(current, expected_version, fence)
            lease = {"lease_owner": None, "lease_expires": None} if release else {}
            if batch.history is not None:  # first: what fails here leaves the record as it was
                self._append_history(record.id, batch.history)
            stored = self._store_data(current, record, now, rows, **lease)
            self._apply(record.id, batch, now)
            return stored

    def update_free(
        self,
        record: Record,
        *,
        expected_version: int,
        now: datetime,
        owner: str | None = None,
        lease: timedelta | None = None,
        batch: Batch = NO_BATCH,
        inputs: Sequence[PendingInput] | None = None,
    ) -> Record:
        now, expires = free_lease(now, owner, lease)
        rows = None if inputs is None else check_inputs(record.id, inputs)
        written = utcnow()
        with self._lock:
            current = self._current(record.id)
            if current.version != expected_version or current.lease_live(now):
                raise refusal(current, expected_version, None, now)
            fence = current.fence if owner is None else current.fence + 1
            if batch.history is not None:  # first: what fails here leaves the record as it was
                self._append_history(record.id, batch.history)
            stored = self._store_data(
                current,
                record,
                written,
                rows,
                lease_owner=owner,
                lease_expires=expires,
                fence=fence,
            )
            self._apply(record.id, batch, written)
            return stored

    def _store_data(
        self,
        current: Record,
        record: Record,
        now: datetime,
        inputs: tuple[PendingInput, ...] | None,
        **lease: object,
    ) -> Record:
        """Store ``record``'s data fields over ``current`` (and ``lease``), version + 1, and
        replace the instance's pending-input rows when ``inputs`` is given."""
        if inputs is not None:
            if inputs:
                self._inputs[current.id] = inputs
            else:
                self._inputs.pop(current.id, None)
        stored = with_changes(
            current,
            data=record.data,
            state=record.state,
            status=record.status,
            wake_at=record.wake_at,
            error=record.error,
            inbox=record.inbox,
            version=current.version + 1,
            updated_at=now,
            **lease,
        )
        self._records[current.id] = stored
        return stored

    def claim_due(
        self, now: datetime, owner: str, lease: timedelta, limit: int = 10
    ) -> builtins.list[Record]:
        now = aware(now, "now")
        check_claim_args(owner, lease, limit)
        with self._lock:
            due = [
                self._with_inbox(r)
                for r in self._records.values()
                if not r.lease_live(now)
                and (
                    r.status == "resuming"
                    or (r.wake_at is not None and r.wake_at <= now)
                    or any(m.status == "new" for m in self._inbox.get(r.id, {}).values())
                )
            ]
            claimed = [self._take(r, owner, now + lease) for r in claim_order(due)[:limit]]
        return claimed

    def _take(self, current: Record, owner: str, expires: datetime) -> Record:
        taken = with_changes(
            current, lease_owner=owner, lease_expires=expires, fence=current.fence + 1
        )
        self._records[current.id] = taken
        return taken

    def claim(self, id: str, owner: str, lease: timedelta, now: datetime | None = None) -> Record:
        now = utcnow() if now is None else aware(now, "now")
        check_claim_args(owner, lease)
        with self._lock:
            current = self._current(id)
            if current.lease_owner not in (None, owner) and current.lease_live(now):
                raise lease_conflict(current, owner)
            return self._take(current, owner, now + lease)

    def renew(
        self,
        id: str,
        owner: str,
        fence: int,
        lease: timedelta,
        now: datetime | None = None,
    ) -> Record:
        now = utcnow() if now is None else aware(now, "now")
        check_claim_args(owner, lease)
        with self._lock:
            current = self._current(id)
            if current.lease_owner != owner or current.fence != fence:
                raise refusal(current, current.version, fence)
            renewed = with_changes(current, lease_expires=now + lease)
            self._records[id] = renewed
            return renewed

    def release(self, id: str, owner: str, fence: int) -> bool:
        with self._lock:
            current = self._current(id)
            if current.lease_owner != owner or current.fence != fence:
                return False
            self._records[id] = with_changes(current, lease_owner=None, lease_expires=None)
            return True

    def inputs(
        self, *, assignee: str | None = None, workflow: str | None = None
    ) -> builtins.list[PendingInput]:
        with self._lock:
            rows = [row for rows in self._inputs.values() for row in rows]
        return matching(rows, assignee, workflow)

    def set_target(self, workflow: str, target: str) -> None:
        with self._lock:
            self._targets[workflow] = target

    def get_target(self, workflow: str) -> str | None:
        with self._lock:
            return self._targets.get(workflow)

    def targets(self) -> dict[str, str]:
        with self._lock:
            return dict(self._targets)

    def count_due(self, now: datetime) -> int:
        now = aware(now, "now")
        with self._lock:
            return sum(1 for r in self._records.values() if r.wake_at and r.wake_at <= now)

    def count_instances(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(Counter((r.workflow, r.status) for r in self._records.values()))

    def close(self) -> None:
        """Nothing to release; the records stay readable."""

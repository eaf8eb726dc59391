"""The store contract: the `Record` every backend keeps and the `Store` protocol they implement.

A store keeps one record per workflow instance. Three rules hold on every backend:

- **Compare-and-set.** `Store.update` names the version it read; if the record moved on since,
  the write is refused with `ConflictError` and nothing changes. Never a silent overwrite.
  `Store.update_free`, a write made without a lease, is also refused while anyone holds one.
- **Leases.** Work is claimed (`Store.claim_due`, `Store.claim`) under a lease: an owner name
  and an expiry time. A live lease (``lease_expires >= now``) keeps other claimers away.
- **Fencing.** Every claim increments the record's ``fence``. A write made with ``fence=`` only
  succeeds while that claim is still the current one, so a worker whose lease lapsed and was
  taken over by another cannot commit, however late its write arrives.

Beside each record a store keeps its outbox: the messages a step emitted (`OutboxMessage`),
written by the `Batch` of the write that commits the step, until they are delivered.

Beside each record a store keeps the index of what people are asked for in it (`PendingInput`
rows, `Store.inputs`): a data write given ``inputs=`` replaces the instance's rows in the same
commit as its state, and one given none leaves them as they are.

The `Record` and its values are `stmtflow.stores._record`'s, the refusals and claim checks the
rules above call for `stmtflow.stores._leases`'; both are re-exported here.

Example:
    >>> from stmtflow.stores import open_store
    >>> with open_store("memory://") as store:
    ...     rec = store.create(Record(id="a", workflow="Order", data="{}", state="{}"))
    ...     rec.version, rec.status, rec.fence
    (1, 'resuming', 0)
"""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from stmtflow.state import TERMINAL_STATUSES
from stmtflow.stores._batch import NO_BATCH, Batch, Message
from stmtflow.stores._inputs import PendingInput
from stmtflow.stores._leases import (
    check_claim_args,
    claim_order,
    free_lease,
    lease_conflict,
    refusal,
)
from stmtflow.stores._outbox import OutboxMessage
from stmtflow.stores._record import Record, aware, status_value, utcnow, with_changes
from stmtflow.stores._schedules import ScheduleRow

__all__ = [
    "NO_BATCH",
    "TERMINAL_STATUSES",
    "Batch",
    "Message",
    "OutboxMessage",
    "PendingInput",
    "Record",
    "ScheduleRow",
    "Store",
    "aware",
    "check_claim_args",
    "claim_order",
    "free_lease",
    "lease_conflict",
    "redact",
    "refusal",
    "status_value",
    "utcnow",
    "with_changes",
]


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password is None:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@runtime_checkable
class Store(Protocol):
    """Where workflow instances live: one `Record` each, written compare-and-set.

    Every method is safe to call from several threads; SQLite, PostgreSQL and Redis stores are
    also safe for several processes (and, for PostgreSQL and Redis, machines) sharing one
    database. A store is a context manager that closes itself.

    Example:
        >>> from datetime import timedelta
        >>> from stmtflow.stores import open_store
        >>> store = open_store("memory://")
        >>> rec = store.create(Record(id="a", workflow="Order", data="{}", state="{}"))
        >>> [r.fence for r in store.claim_due(utcnow(), "worker-1", timedelta(seconds=30), 10)]
        [1]
        >>> store.close()
    """

    def create(self, record: Record, *, inputs: Sequence[PendingInput] | None = None) -> Record:
        """Store a new instance and return it as stored.

        Kept from ``record``: id, workflow, data, state, status, wake_at, error, created_at (the
        current time when None) and the lease fields (so a creator can hold the new instance
        from birth: its fence is then 1, else 0). Set by the store: version 1, updated_at.
        ``inputs``: the pending-input rows of the state it is created with, in the same commit
        (none when None or empty; see `update`).

        Raises:
            ConflictError: the id exists already; the stored record is left unchanged.
        """
        ...

    def get(self, id: str) -> Record:
        """The instance with that id.

        Raises:
            NotFound: no such id.
        """
        ...

    def list(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int | None = None,
        *,
        parent_id: str | None = None,
    ) -> builtins.list[Record]:
        """Instances ordered by (created_at, id), optionally filtered (by status, type, the
        parent that started them) and capped at ``limit``."""
        ...

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
        """Write ``record``'s data, state, status, wake_at and error; return the stored record.

        ``release=True`` drops the lease in the same write (the last write of a unit of work:
        one commit instead of two). ``batch`` is applied in the same transaction (`Batch`):
        children created, messages posted, the instance's own messages taken or kept.
        ``inputs`` (see `Store.inputs`), when given, replaces the instance's pending-input rows
        in the same commit (an empty sequence removes them; each row must name ``record.id``,
        else `ValueError` and nothing is written); None leaves them.

        Compare-and-set: the write happens only if the stored version is ``expected_version``,
        and, when ``fence`` is given, only if the stored fence equals it and the lease is held
        (lease_owner not None). An expired lease nobody else claimed still lets its holder
        write: the fence, not the clock, decides. The version becomes ``expected_version + 1``.
        Id, workflow, created_at and the fence are never changed by an update, nor the lease
        unless ``release``. The returned record is built from ``record`` and the columns the
        update leaves alone, not by re-reading the whole row.

        Raises:
            ConflictError: the version or fence did not match (naming the id and both
                versions or fences); nothing was changed.
            NotFound: no such id.
        """
        ...

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
        """Write ``record``'s data, state, status, wake_at and error if nobody holds a live lease.

        ``batch`` and ``inputs`` as for `update`: applied in the same commit.

        Compare-and-set like `update`: only if the stored version is ``expected_version``, and
        only if no live lease is held at ``now`` (lease_expires None or before ``now``; the
        caller's own lease counts too). With ``owner`` (and ``lease``), the same write claims the
        instance: ``lease_owner = owner``, ``lease_expires = now + lease``, fence + 1: one commit
        for "write progress and take the lease". Without ``owner``, the write leaves the record
        unleased (a lapsed lease is cleared: lease_owner and lease_expires become None). The
        version becomes ``expected_version + 1``; id, workflow and created_at never change.
        Returns the stored record.

        It serves an optimistic write: read the record without a lease, do the work in memory,
        then commit it in one statement (instead of claim, then update with ``release=True``).

        Raises:
            ConflictError: the version changed, or a live lease is held (the message says which,
                and by whom); nothing was changed.
            NotFound: no such id.
            ValueError: a naive ``now``; ``owner`` without a positive ``lease`` (see
                `check_claim_args`), or ``lease`` without ``owner``.
        """
        ...

    def claim_due(
        self, now: datetime, owner: str, lease: timedelta, limit: int = 10
    ) -> builtins.list[Record]:
        """Atomically claim up to ``limit`` instances with work to do, ordered by wake_at.

        Claimable: no live lease (lease_expires None or before ``now``), and either due
        (``wake_at <= now``, whatever the status: an ended instance keeps a wake-up only while a
        teardown must be retried) or ``resuming`` (work a crashed worker left; those come
        first), or holding a ``new`` `Message` (something was posted to it). Each claimed record
        gets ``lease_owner = owner``,
        ``lease_expires = now + lease`` and ``fence + 1``. Concurrent claimers never get the
        same record while its lease is live. The cost follows the due records, not the table.
        """
        ...

    def claim(self, id: str, owner: str, lease: timedelta, now: datetime | None = None) -> Record:
        """Claim one instance (e.g. to deliver a callback), whatever its status or wake_at.

        Succeeds when no other owner holds a live lease (``owner`` may re-claim its own);
        the fence increments and the lease runs until ``now + lease``.

        Raises:
            ConflictError: another owner holds a live lease.
            NotFound: no such id.
        """
        ...

    def renew(
        self,
        id: str,
        owner: str,
        fence: int,
        lease: timedelta,
        now: datetime | None = None,
    ) -> Record:
        """Extend a held lease to ``now + lease`` (a heartbeat for long work); fence unchanged.

        Raises:
            ConflictError: the lease is not held by ``owner`` with ``fence`` any more.
            NotFound: no such id.
        """
        ...

    def release(self, id: str, owner: str, fence: int) -> bool:
        """Drop the lease if ``owner`` still holds it with ``fence``; True if it was dropped.

        The version is not bumped and the data is untouched: a lease is who may write, not
        what was written. A lease already taken over is left alone (False).

        Raises:
            NotFound: no such id.
        """
        ...

    def post(self, message: Message) -> bool:
        """Put ``message`` in its instance's inbox on its own (a buffered send); False when a
        message with its key was kept already (nothing is stored then).

        Raises:
            NotFound: no instance ``message.to``.
        """
        ...

    def inbox(self, id: str) -> builtins.list[Message]:
        """The messages of instance ``id`` not yet taken (``new`` and ``kept``), in arrival
        order (an unknown id has none)."""
        ...

    def known_key(self, id: str, key: str) -> bool:
        """Whether instance ``id`` holds or took a message with ``key`` (a keyed send)."""
        ...

    def inputs(
        self, *, assignee: str | None = None, workflow: str | None = None
    ) -> builtins.list[PendingInput]:
        """The pending-input rows of every instance (as the last write of each left them),
        optionally only those for ``assignee`` or of ``workflow``; oldest question first
        (by ``asked_at``, then instance, thread and event). Read from the index alone: the cost
        follows the rows, not the number of instances or the size of their states. A record
        created but never updated has none."""
        ...

    def outbox_claim(
        self, now: datetime, lease: timedelta, limit: int = 100
    ) -> builtins.list[OutboxMessage]:
        """Claim up to ``limit`` outbox messages due for delivery (``next_attempt_at <= now``),
        oldest first: each one's ``next_attempt_at`` becomes ``now + lease``, so another
        deliverer skips it while this one sends; a deliverer that dies leaves it due again
        once the claim lapses (delivery is at least once)."""
        ...

    def outbox_sent(self, seqs: Sequence[int]) -> None:
        """Forget delivered messages (unknown seqs are ignored)."""
        ...

    def outbox_retry(
        self, seqs: Sequence[int], retry_at: datetime, error: str | None = None
    ) -> None:
        """Make messages ``seqs`` due again at ``retry_at``; with ``error``, record a failed
        delivery too (``attempts`` + 1, ``last_error``). Unknown seqs are ignored."""
        ...

    def outbox(self, instance_id: str | None = None) -> builtins.list[OutboxMessage]:
        """The messages not yet delivered (of one instance, or all), in the order emitted."""
        ...

    def set_target(self, workflow: str, target: str) -> None:
        """Remember where a workflow type is imported from (``path/file.py:Class``)."""
        ...

    def get_target(self, workflow: str) -> str | None:
        """Where a workflow type was imported from, or None if never set."""
        ...

    def targets(self) -> dict[str, str]:
        """Every remembered workflow type and its target."""
        ...

    def count_due(self, now: datetime) -> int:
        """How many instances have a wake-up at or before ``now`` (uses the wake-up index)."""
        ...

    def count_instances(self) -> dict[tuple[str, str], int]:
        """How many instances there are of each (workflow type, status) pair present.

        SQLite, PostgreSQL and memory count without reading any record (one ``GROUP BY``, or
        a pass over the memory store's records); this default, which the Redis and NATS
        stores use, lists every record.
        """
        return dict(Counter((r.workflow, r.status) for r in self.list()))

    # -- schedules (rows the runtime writes, `stmtflow.stores._schedules`) ----------------------

    def put_schedule(self, row: ScheduleRow, *, expected_version: int) -> ScheduleRow:
        """Write ``row`` (its name, spec and due_at) compare-and-set; return it as stored.

        ``expected_version`` 0 creates it (refused if the name exists); any other value
        replaces the stored row only while its version is that value. The version becomes
        ``expected_version + 1``.

        Raises:
            ConflictError: the name exists (creating), or the row changed or was removed;
                nothing was written.
        """
        ...

    def get_schedule(self, name: str) -> ScheduleRow:
        """The schedule named ``name``.

        Raises:
            NotFound: no such schedule.
        """
        ...

    def list_schedules(self) -> builtins.list[ScheduleRow]:
        """Every stored schedule, ordered by name."""
        ...

    def delete_schedule(self, name: str) -> bool:
        """Remove the schedule named ``name``; False if there was none."""
        ...

    def due_schedules(self, now: datetime, limit: int = 100) -> builtins.list[ScheduleRow]:
        """Up to ``limit`` schedules with ``due_at <= now``, earliest first (from an index: the
        cost follows the due schedules, not all of them)."""
        ...

    def close(self) -> None:
        """Release connections and files. Closing twice is harmless."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

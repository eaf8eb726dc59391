"""What one instance's write carries for others: the `Message` rows of inboxes, and the `Batch`
a store applies atomically with a write (`stmtflow.stores.base.Store.update`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stmtflow.stores._history import HistoryWrite

if TYPE_CHECKING:
    from stmtflow.stores._locks import LockClaim
    from stmtflow.stores._outbox import OutboxMessage
    from stmtflow.stores.base import Record

__all__ = ["NO_BATCH", "Batch", "Message"]


@dataclass(frozen=True, slots=True)
class Message:
    """A row of an instance's inbox: an event for it, or a request to cancel it.

    Messages are how one instance reaches another without writing its record: a child's end
    (for the parent's armed event), a parent's cancel (for a child), a buffered `Engine.send`.
    A store keeps them in arrival order (``seq``) and makes an instance with a ``new`` message
    due (`Store.claim_due`), whatever its ``wake_at``.

    Example:
        >>> Message(to="order-1", kind="event", event="paid", input='{"amount": 3}').status
        'new'
    """

    to: str
    """The instance the message is for."""
    kind: str = "event"
    """``"event"`` (deliver ``event``) or ``"cancel"`` (cancel the instance)."""
    event: str = ""
    """The event name (for ``"event"``)."""
    thread_id: str = ""
    """The thread to deliver to ("" means: whichever waits on ``event``)."""
    pc: int = 0
    """The armed pc the event is for (0 means: whichever wait awaits it)."""
    input: str = "null"
    """The event's input as JSON text."""
    key: str | None = None
    """Deduplicates: a second message with the same key for the same instance is not kept, and
    a key stays known after its message was taken."""
    buffered: bool = False
    """Kept until a wait arms its event (a buffered send); else a message nobody can take now
    (a child's end for a wait that is gone) is dropped."""
    status: str = "new"
    """``new`` (not yet looked at: the instance is due), ``kept`` (looked at, waiting for a wait
    to arm), ``done`` (taken; kept only for its ``key``)."""
    seq: int = 0
    """Arrival order, set by the store (0 before it is stored)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """What a store applies atomically with one write of an instance (`Store.update`,
    `Store.update_free`): nothing of it happens if the write is refused.

    Example:
        >>> Batch(take=(3,)).empty
        False
    """

    create: tuple[Record, ...] = ()
    """Records to create (children started by this write), kept as `Store.create` keeps them
    (a lease included: the writer may hold a child from birth); one whose id exists is left as
    it is, so a write repeated after a crash never starts a second child."""
    post: tuple[Message, ...] = ()
    """Messages to put in other instances' inboxes (one for a missing instance is dropped)."""
    take: tuple[int, ...] = ()
    """Seqs of the written instance's own messages it took (delivered or dropped)."""
    keep: tuple[int, ...] = ()
    """Seqs of its messages it looked at and keeps for later (``new`` becomes ``kept``)."""
    keys: tuple[str, ...] = ()
    """Keys of events it had delivered directly (a keyed send), remembered as taken."""
    emit: tuple[OutboxMessage, ...] = ()
    """Outbox messages the steps of this write emitted (`stmtflow.emit`); one whose key is
    stored already is left as it is."""
    history: HistoryWrite | None = None
    """History events (and a snapshot) the write appends (`stmtflow.stores._history`)."""
    locks: tuple[LockClaim, ...] | None = None
    """The written instance's lock claims, replacing its whole set (`stmtflow.stores._locks`);
    None leaves them as they are."""

    @property
    def only_history(self) -> bool:
        """True when the batch holds history and nothing else."""
        return (
            self.history is not None
            and not (self.create or self.post or self.take or self.keep or self.keys or self.emit)
            and self.locks is None
        )

    @property
    def empty(self) -> bool:
        """True when there is nothing to apply beyond the write itself."""
        return (
            not (self.create or self.post or self.take or self.keep or self.keys or self.emit)
            and self.history is None
            and self.locks is None
        )


NO_BATCH = Batch()

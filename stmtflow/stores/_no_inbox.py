"""What a store without inboxes says when asked for one (the Redis and NATS stores, for now).

Child workflows (`Child`, `Call`, `Start`), cancels that cascade to children, and buffered or
keyed sends travel as messages in an instance's inbox, written in the same commit as the write
that sends them (docs/stores.md, "Inboxes and batches"). A store that keeps no inboxes yet keeps
everything else of the contract, and refuses a write that would need one with a
`StmtflowError` naming the store and the stores that have them, before anything is written.
With no message ever stored, its inboxes are empty and it has no children to list.
"""

from __future__ import annotations

import builtins

from stmtflow.errors import StmtflowError
from stmtflow.stores._batch import Batch, Message
from stmtflow.stores._outbox import WithoutOutbox, outbox_refusal

__all__ = ["WithoutInbox", "check_no_batch"]

_HAVE_INBOXES = "the memory, SQLite or PostgreSQL store"


def _refusal(store: str, what: str) -> StmtflowError:
    return StmtflowError(
        f"the {store} store keeps no inboxes yet, so it cannot take {what}: child workflows "
        f"(Child, Call, Start) and buffered or keyed sends need {_HAVE_INBOXES}"
    )


def check_no_batch(store: str, record_id: str, batch: Batch) -> None:
    """Refuse a write of ``record_id`` that carries messages or children (nothing is written)."""
    if batch.emit:  # the engine refuses emit() in the action already: this guards other callers
        raise outbox_refusal(store)
    if not batch.empty:
        raise _refusal(store, f"the write of instance {record_id!r} with its messages")


class WithoutInbox(WithoutOutbox):
    """The inbox methods of the `Store` contract for a store that keeps no messages (and,
    from `WithoutOutbox`, the outbox methods: it keeps no outbox either)."""

    def post(self, message: Message) -> bool:
        """Refused: a buffered send needs an inbox."""
        raise _refusal(self.store_name, f"a buffered send of {message.event!r}")

    def inbox(self, id: str) -> builtins.list[Message]:
        """No message is ever stored here: every inbox is empty."""
        return []

    def known_key(self, id: str, key: str) -> bool:
        """No keyed message is ever stored here."""
        return False

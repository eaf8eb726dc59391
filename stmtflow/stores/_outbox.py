"""The outbox rows a store keeps: messages a step emitted, committed with its checkpoint.

A step action calls `stmtflow.emit`; the engine's unit of work writes what a successful action
emitted as `OutboxMessage` rows in the `Batch` of the write that makes the step's progress
durable (`Batch.emit`), so a message exists exactly when the step's checkpoint does. The
engine's delivery (`stmtflow.runtime._outbox`) then claims due rows (`Store.outbox_claim`),
hands them to the sinks, and deletes them once every sink took them (`Store.outbox_sent`), or
records the failure and a later retry time (`Store.outbox_retry`).

Every store of this package keeps an outbox. A store of your own that keeps none says so with a
class attribute ``keeps_outbox = False`` (and ``store_name``, how the refusal names it): the
engine then refuses `emit` inside the action, before anything is written (`outbox_refusal`).

Example:
    >>> OutboxMessage(key="o-1/_main_/pay/3/0", topic="paid", payload='{"amount": 3}').value
    {'amount': 3}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stmtflow.errors import OutboxError

__all__ = ["OutboxMessage", "outbox_refusal"]


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message a step emitted (`stmtflow.emit`), as the outbox keeps it and sinks get it.

    Example:
        >>> m = OutboxMessage(key="k", topic="orders.paid", payload="[1, 2]")
        >>> m.topic, m.value, m.attempts
        ('orders.paid', [1, 2], 0)
    """

    key: str
    """Stable identity: ``"<instance>/<thread>/<step>/<step pc>/<n>"``, the n-th message
    (from 0) the step's action emitted, where the step pc is the execution-wide pc at which
    the thread reached the step (`stmtflow.current_step().key` plus ``/n``). The same when the
    step runs again after a crash, so consumers deduplicate by it (the NATS sink sends it as
    ``Nats-Msg-Id``)."""
    topic: str
    """What the step passed as ``topic``."""
    payload: str
    """The payload as JSON text."""
    instance_id: str = ""
    """The instance whose step emitted it."""
    thread_id: str = ""
    """The thread that ran the step."""
    step: str = ""
    """The step's name."""
    seq: int = 0
    """Order of emission in the store (set by the store; 0 before it is stored)."""
    created_at: datetime | None = None
    """When the store committed it."""
    attempts: int = 0
    """Failed deliveries so far."""
    last_error: str | None = None
    """The last delivery failure, as ``"sink: ExceptionType: message"``."""
    next_attempt_at: datetime | None = None
    """When it is due for delivery next (while claimed: when the claim lapses), by the
    delivering engine's clock; None for a message never claimed: due at once."""

    @property
    def value(self) -> Any:
        """The payload parsed from its JSON."""
        return json.loads(self.payload)


def outbox_refusal(store: str) -> OutboxError:
    """The error `emit` raises on a store that keeps no outbox."""
    return OutboxError(
        f"the {store} store keeps no outbox, so a step cannot emit(); use one of stmtflow's "
        "stores (memory, SQLite, PostgreSQL, Redis, NATS) for workflows that emit messages"
    )

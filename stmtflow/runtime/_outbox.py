"""The outbox: what steps emit is committed with their checkpoint, then delivered to sinks.

Two halves, one per side of the commit:

- **Keeping** (`StepEmits`, `Emitting`). The unit of work runs each step action with a fresh
  `StepEmits` set as the `stmtflow.emit` collector. When the action returns, its messages join
  the unit's pending outbox rows; when it raises, they are dropped with the rest of the
  attempt. The next write of the unit — the one that makes the step's progress durable — carries
  them in its `Batch` (``emit``), so a message is stored exactly when its step's checkpoint is.
- **Delivering** (`Delivery`). After every engine call that committed messages, and on every
  `Engine.tick`, the engine claims due rows from the store under a short lease, hands each to
  every sink in turn, and deletes it once all took it. A sink that raises leaves the message in
  the outbox with the failure recorded and a retry time after an exponential, capped backoff;
  the messages claimed behind it are put back due at once (the round stops: the sink is likely
  down). A crash between a sink taking a message and its row being deleted delivers it again
  once the claim lapses: delivery is at least once, with the same `OutboxMessage.key`.

Stable keys: ``"<instance>/<thread>/<step>/<step pc>/<n>"``, the step's idempotency key
(`stmtflow.current_step().key`, built from the execution-wide pc at which the thread reached
the step, the same for every attempt and after a crash) and the message's index within that
execution of the action. An action that runs again after a crash emits the same keys in the
same order, as long as it emits the same messages in the same order.
"""

from __future__ import annotations

import builtins
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stmtflow._log import fields
from stmtflow.core._effects import describe
from stmtflow.dsl._context import StepKey
from stmtflow.dsl._emit import emitter_var
from stmtflow.dsl._step import RetryPolicy
from stmtflow.stores._outbox import OutboxMessage, outbox_refusal
from stmtflow.stores.base import Batch, Store

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine

__all__ = [
    "DEFAULT_OUTBOX_RETRY",
    "Delivery",
    "Emitting",
    "OutboxCalls",
    "OutboxStuck",
    "Sink",
    "StepEmits",
    "outbox_stuck",
]

_log = logging.getLogger("stmtflow.outbox")

Sink = Callable[[OutboxMessage], Any]
"""Where the outbox delivers: called with each message; a message counts as delivered when it
returns, and as failed when it raises. `RedisStreamSink` and `NatsSink` are sinks too."""

DEFAULT_OUTBOX_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    max_interval=timedelta(minutes=5),
)
"""The backoff of a message whose delivery failed: 1 s, 2 s, 4 s, ... at most 5 minutes apart.
Its ``max_attempts`` is not used: the outbox never gives a committed message up."""


class StepEmits:
    """The messages one execution of a step action emitted (the `stmtflow.emit` collector)."""

    __slots__ = ("messages", "refusal", "step")

    def __init__(self, step: StepKey, refusal: str | None) -> None:
        self.step = step
        self.refusal = refusal
        """The store's name when it keeps no outbox: `emit` is refused."""
        self.messages: list[OutboxMessage] = []

    def emit(self, topic: str, payload: str) -> str:
        if self.refusal is not None:
            raise outbox_refusal(self.refusal)
        workflow_id, thread_id, step, _, step_pc = self.step
        key = f"{workflow_id}/{thread_id}/{step}/{step_pc}/{len(self.messages)}"
        self.messages.append(
            OutboxMessage(
                key=key,
                topic=topic,
                payload=payload,
                instance_id=workflow_id,
                thread_id=thread_id,
                step=step,
            )
        )
        return key


class Emitting:
    """A unit's outbox rows not yet written: those of the step actions that returned."""

    __slots__ = ("pending", "refusal")

    def __init__(self, store: Store) -> None:
        self.pending: list[OutboxMessage] = []
        self.refusal: str | None = (
            None if getattr(store, "keeps_outbox", True) else getattr(store, "store_name", "this")
        )

    def wrap(self, fn: Callable[..., Any], step: StepKey) -> Callable[..., Any]:
        """``fn`` (a step action) run with a collector of its own; what it emitted is kept
        only if it returns. An async action returns an awaitable that has not run yet: it is
        wrapped so that its body runs with the collector, and what it emitted is kept once it
        completes (the engine's async entry points and worker await it)."""

        def action(*args: Any) -> Any:
            emits = StepEmits(step, self.refusal)
            token = emitter_var.set(emits)
            try:
                result = fn(*args)
            finally:
                emitter_var.reset(token)
            if inspect.isawaitable(result):
                return self._awaited(result, emits)
            if emits.messages:
                self.pending.extend(emits.messages)
            return result

        return action

    async def _awaited(self, result: Awaitable[Any], emits: StepEmits) -> Any:
        token = emitter_var.set(emits)
        try:
            value = await result
        finally:
            emitter_var.reset(token)
        self.pending.extend(emits.messages)
        return value

    def into(self, batch: Batch) -> Batch:
        """``batch`` with the pending rows added (the write that commits their steps)."""
        return replace(batch, emit=tuple(self.pending)) if self.pending else batch

    def written(self, batch: Batch, engine: Engine) -> None:
        """``batch`` was committed: forget its rows, and have the engine deliver them."""
        if batch.emit:
            del self.pending[: len(batch.emit)]
            engine.outbox.due = True


@dataclass(frozen=True, slots=True)
class OutboxStuck:
    """An outbox message whose delivery keeps failing (for `engine.stuck`-style listings)."""

    instance_id: str
    """The instance whose step emitted it."""
    reason: str
    """Why it is listed: the topic, key, failed attempts, last error and next try."""
    message: OutboxMessage
    """The message as the outbox holds it."""


def outbox_stuck(store: Store, *, min_attempts: int = 1) -> list[OutboxStuck]:
    """Outbox messages that failed at least ``min_attempts`` deliveries, oldest first.

    What a listing of stuck work (`engine.stuck`) adds for the outbox: each names the instance
    and says why.
    """
    found = []
    for m in store.outbox():
        if m.attempts < min_attempts:
            continue
        when = m.next_attempt_at.isoformat() if m.next_attempt_at else "?"
        reason = (
            f"outbox message {m.key!r} (topic {m.topic!r}) failed {m.attempts} "
            f"deliver{'y' if m.attempts == 1 else 'ies'}, last: {m.last_error}; next try at {when}"
        )
        found.append(OutboxStuck(instance_id=m.instance_id, reason=reason, message=m))
    return found


def sink_name(sink: Sink) -> str:
    """How errors name a sink: its ``name`` attribute, else its (or its class's) qualified name."""
    name = getattr(sink, "name", None)
    if isinstance(name, str) and name:
        return name
    qualname = getattr(sink, "__qualname__", None)
    return qualname if isinstance(qualname, str) else type(sink).__qualname__


class Delivery:
    """Hands committed outbox messages to the engine's sinks (see the module docstring).

    Args:
        store: the store whose outbox is delivered.
        sinks: where each message goes (every sink gets every message). Without sinks nothing
            is delivered: messages stay in the outbox for an engine that has some.
        retry: the backoff after failed deliveries (`DEFAULT_OUTBOX_RETRY`).
        lease: how long a claimed message is left alone by other deliverers.
        batch: how many messages one claim takes.
    """

    def __init__(
        self,
        store: Store,
        sinks: Sequence[Sink],
        *,
        retry: RetryPolicy = DEFAULT_OUTBOX_RETRY,
        lease: timedelta = timedelta(seconds=30),
        batch: int = 100,
    ) -> None:
        for sink in sinks:
            if not callable(sink):
                raise TypeError(f"a sink must be callable with an OutboxMessage, got {sink!r}")
        self.store = store
        self.sinks = tuple(sinks)
        self.retry = retry
        self.lease = lease
        self.batch = batch
        self.due = False
        """Set when this engine committed messages since its last delivery."""

    def deliver(self, now: datetime) -> int:
        """Deliver the messages due at ``now``; how many were delivered. Never raises for a
        sink's failure (it is recorded on the message and logged)."""
        self.due = False
        if not self.sinks:
            return 0
        delivered = 0
        while True:
            claimed = self.store.outbox_claim(now, self.lease, self.batch)
            if not claimed:
                return delivered
            sent, failed = self._send(claimed, now)
            delivered += sent
            if failed or len(claimed) < self.batch:
                return delivered

    def _send(self, claimed: list[OutboxMessage], now: datetime) -> tuple[int, bool]:
        """Send ``claimed`` in order; stop at the first failure. (sent count, failed)"""
        done: list[int] = []
        for i, message in enumerate(claimed):
            for sink in self.sinks:
                try:
                    sink(message)
                except Exception as exc:
                    self.store.outbox_sent(done)
                    self._failed(message, sink, exc, now, claimed[i + 1 :])
                    return len(done), True
            done.append(message.seq)
        self.store.outbox_sent(done)
        return len(done), False

    def _failed(
        self,
        message: OutboxMessage,
        sink: Sink,
        exc: Exception,
        now: datetime,
        rest: list[OutboxMessage],
    ) -> None:
        attempts = message.attempts + 1
        retry_at = now + self.retry.interval(min(attempts, 64))  # no float overflow
        error = f"{sink_name(sink)}: {describe(exc)}"
        self.store.outbox_retry([message.seq], retry_at, error)
        if rest:  # not tried: due again at once
            self.store.outbox_retry([m.seq for m in rest], now)
        _log.warning(
            "outbox message %s (topic %r) not delivered (attempt %d): %s; next try at %s",
            message.key,
            message.topic,
            attempts,
            error,
            retry_at.isoformat(),
            extra=fields(
                message.instance_id,
                thread_id=message.thread_id,
                step=message.step,
                attempt=attempts,
            ),
        )

    def failures(self) -> list[OutboxMessage]:
        """Messages whose delivery failed at least once and that are still undelivered."""
        return [m for m in self.store.outbox() if m.attempts > 0]


class OutboxCalls:
    """`deliver_outbox`, `outbox_messages`, `outbox_failures`: the `Engine`'s outbox methods (a
    mixin)."""

    store: Store
    outbox: Delivery
    clock: Callable[[], datetime]

    def deliver_outbox(self, now: datetime | None = None) -> int:
        """Deliver the outbox messages due now to the sinks; how many were delivered.

        The engine does this after every call that committed messages and on every `tick`;
        call it to retry at once. A sink's failure is recorded on its message (see
        `outbox_failures`), never raised.
        """
        return self.outbox.deliver(now or self.clock())

    def outbox_messages(self, id: str | None = None) -> builtins.list[OutboxMessage]:
        """The messages not yet delivered (of instance ``id``, or all), in the order emitted."""
        return self.store.outbox(id)

    def outbox_failures(self) -> builtins.list[OutboxMessage]:
        """Undelivered messages whose delivery failed at least once: ``attempts``,
        ``last_error`` (naming the sink) and ``next_attempt_at`` say how it goes."""
        return self.outbox.failures()

"""The memory store's outbox: `OutboxMessage` rows in a dict, under the store's lock."""

from __future__ import annotations

import builtins
import dataclasses
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from stmtflow.stores._outbox import OutboxMessage

__all__ = ["MemoryOutbox"]


class MemoryOutbox:
    """The outbox methods of `stmtflow.stores.memory.MemoryStore` (a mixin: it shares the
    store's lock, and the store calls `_emit` in the transaction of a write)."""

    _lock: threading.RLock

    def _outbox_init(self) -> None:
        self._outbox: dict[int, OutboxMessage] = {}
        self._outbox_keys: set[str] = set()
        self._outbox_seq = 0

    def _emit(self, messages: Sequence[OutboxMessage], now: datetime) -> None:
        """Keep ``messages`` (under the lock, with the write that carries them)."""
        for message in messages:
            if message.key in self._outbox_keys:
                continue
            self._outbox_seq += 1
            self._outbox_keys.add(message.key)
            self._outbox[self._outbox_seq] = dataclasses.replace(
                message, seq=self._outbox_seq, created_at=now, next_attempt_at=None
            )

    def outbox_claim(
        self, now: datetime, lease: timedelta, limit: int = 100
    ) -> builtins.list[OutboxMessage]:
        with self._lock:
            claimed = []
            for seq in sorted(self._outbox):
                message = self._outbox[seq]
                due = message.next_attempt_at
                if due is not None and due > now:
                    continue
                self._outbox[seq] = dataclasses.replace(message, next_attempt_at=now + lease)
                claimed.append(message)
                if len(claimed) >= limit:
                    break
            return claimed

    def outbox_sent(self, seqs: Sequence[int]) -> None:
        with self._lock:
            for seq in seqs:
                sent = self._outbox.pop(seq, None)
                if sent is not None:
                    self._outbox_keys.discard(sent.key)

    def outbox_retry(
        self, seqs: Sequence[int], retry_at: datetime, error: str | None = None
    ) -> None:
        with self._lock:
            for seq in seqs:
                message = self._outbox.get(seq)
                if message is None:
                    continue
                if error is not None:
                    message = dataclasses.replace(
                        message, attempts=message.attempts + 1, last_error=error
                    )
                self._outbox[seq] = dataclasses.replace(message, next_attempt_at=retry_at)

    def outbox(self, instance_id: str | None = None) -> builtins.list[OutboxMessage]:
        with self._lock:
            rows = [self._outbox[seq] for seq in sorted(self._outbox)]
        return [m for m in rows if instance_id is None or m.instance_id == instance_id]

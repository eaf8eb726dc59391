"""The PostgreSQL store's messages: its outbox (`stmtflow.stores._postgres_outbox`) and its
instances' inboxes (`stmtflow.stores._postgres_inbox`).

A mixin of `stmtflow.stores.postgres.PostgresStore`; the messages a data write carries are
written with that write, by the store itself (`stmtflow.stores.postgres`'s ``_folded`` and
``_apply``).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stmtflow.stores import _postgres_outbox as outbox
from stmtflow.stores._outbox import OutboxMessage
from stmtflow.stores._postgres_inbox import known_key, pending, post
from stmtflow.stores.base import Message, Record, aware, utcnow

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["PostgresMessages"]


class PostgresMessages:
    """The outbox and inbox methods of the `Store` contract over the store's pool."""

    _pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]]

    if TYPE_CHECKING:  # the store's own (`stmtflow.stores.postgres.PostgresStore`)

        def _fetch(
            self, conn: psycopg.Connection[tuple[Any, ...]], id: str, lock: bool = False
        ) -> Record: ...
        def _one(self, query: str, params: Any) -> tuple[Any, ...] | None: ...

    # -- outbox -----------------------------------------------------------------------------

    def outbox_claim(
        self, now: datetime, lease: timedelta, limit: int = 100
    ) -> builtins.list[OutboxMessage]:
        with self._pool.connection() as conn:
            return outbox.claim(conn, aware(now, "now"), lease, limit)

    def outbox_sent(self, seqs: Sequence[int]) -> None:
        with self._pool.connection() as conn:
            outbox.sent(conn, seqs)

    def outbox_retry(
        self, seqs: Sequence[int], retry_at: datetime, error: str | None = None
    ) -> None:
        with self._pool.connection() as conn:
            outbox.retry(conn, seqs, aware(retry_at, "retry_at"), error)

    def outbox(self, instance_id: str | None = None) -> builtins.list[OutboxMessage]:
        with self._pool.connection() as conn:
            return outbox.listing(conn, instance_id)

    # -- inboxes ----------------------------------------------------------------------------

    def post(self, message: Message) -> bool:
        with self._pool.connection() as conn:
            self._fetch(conn, message.to)  # NotFound when missing
            return post(conn, message, utcnow())

    def inbox(self, id: str) -> builtins.list[Message]:
        with self._pool.connection() as conn:
            return pending(conn, id)

    def known_key(self, id: str, key: str) -> bool:
        with self._pool.connection() as conn:
            return known_key(conn, id, key)

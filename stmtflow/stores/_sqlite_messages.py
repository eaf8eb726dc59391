"""The SQLite store's messages: its outbox (`stmtflow.stores._sqlite_outbox`) and its
instances' inboxes (`stmtflow.stores._sqlite_inbox`), each call one transaction.

A mixin of `stmtflow.stores.sqlite.SQLiteStore`; the messages a data write carries are written
in that write's transaction, by the store itself (`SQLiteStore._apply`).
"""

from __future__ import annotations

import builtins
import contextlib
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from stmtflow.stores import _sqlite_outbox as outbox
from stmtflow.stores._outbox import OutboxMessage
from stmtflow.stores._sqlite_inbox import known_key, pending, post
from stmtflow.stores.base import Message, Record, aware, utcnow

__all__ = ["SQLiteMessages"]


class SQLiteMessages:
    """The outbox and inbox methods of the `Store` contract over the store's connections."""

    if TYPE_CHECKING:  # the store's own (`stmtflow.stores.sqlite.SQLiteStore`)

        def _conn(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
        def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...
        def _fetch(self, conn: sqlite3.Connection, id: str) -> Record: ...
        def _whole(self, conn: sqlite3.Connection, row: sqlite3.Row) -> Record: ...

    # -- outbox -----------------------------------------------------------------------------

    def outbox_claim(
        self, now: datetime, lease: timedelta, limit: int = 100
    ) -> builtins.list[OutboxMessage]:
        now = aware(now, "now")
        with self._conn() as conn:  # most ticks find nothing: no write lock for them
            if not outbox.any_due(conn, now):
                return []
        with self._write() as conn:
            return outbox.claim(conn, now, lease, limit)

    def outbox_sent(self, seqs: Sequence[int]) -> None:
        with self._write() as conn:
            outbox.sent(conn, seqs)

    def outbox_retry(
        self, seqs: Sequence[int], retry_at: datetime, error: str | None = None
    ) -> None:
        with self._write() as conn:
            outbox.retry(conn, seqs, aware(retry_at, "retry_at"), error)

    def outbox(self, instance_id: str | None = None) -> builtins.list[OutboxMessage]:
        with self._conn() as conn:
            return outbox.listing(conn, instance_id)

    # -- inboxes ----------------------------------------------------------------------------

    def post(self, message: Message) -> bool:
        with self._write() as conn:
            self._fetch(conn, message.to)  # NotFound when missing
            return post(conn, message, utcnow().isoformat(timespec="microseconds"))

    def inbox(self, id: str) -> builtins.list[Message]:
        with self._conn() as conn:
            return pending(conn, id)

    def known_key(self, id: str, key: str) -> bool:
        with self._conn() as conn:
            return known_key(conn, id, key)

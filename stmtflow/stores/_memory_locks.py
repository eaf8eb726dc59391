"""The in-memory store's lock index (`stmtflow.stores._locks`): its rows in a list, granted
under the store's lock, in the write that changed them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from stmtflow.stores._batch import Message
from stmtflow.stores._locks import LockClaim, LockRow, grant_message, grants

__all__ = ["MemoryLocks"]


class MemoryLocks:
    """Mixed into `MemoryStore`: `_apply_locks` runs under its lock, inside the write."""

    _lock_rows: list[LockRow]
    _lock_seq: int

    def _init_locks(self) -> None:
        self._lock_rows = []
        self._lock_seq = 0

    def _apply_locks(self, id: str, claims: Sequence[LockClaim]) -> list[Message]:
        """Replace instance ``id``'s rows with ``claims``; the messages of the rows granted."""
        wanted = {(c.thread_id, c.name): c for c in claims}
        again = {mark for mark, c in wanted.items() if c.again}
        mine = [r for r in self._lock_rows if r.instance_id == id]
        have = {(r.thread_id, r.name) for r in mine} - again
        gone = [r for r in mine if (r.thread_id, r.name) not in wanted.keys() - again]
        keys = {r.key for r in gone}
        if gone:
            self._lock_rows = [r for r in self._lock_rows if r not in gone]
        for mark, claim in wanted.items():
            if mark in have or claim.key is None:
                continue
            self._lock_seq += 1
            self._lock_rows.append(
                LockRow(
                    self._lock_seq, claim.key, id, claim.thread_id, claim.name, claim.limit, False
                )
            )
            keys.add(claim.key)
        messages = []
        for key in sorted(keys):
            for row in grants([r for r in self._lock_rows if r.key == key]):
                index = self._lock_rows.index(row)
                self._lock_rows[index] = dataclasses.replace(row, granted=True)
                messages.append(grant_message(row))
        return messages

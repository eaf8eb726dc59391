"""How the Redis store keeps a large state: a hash of thread pieces, written by what changed.

A delivery to one of a thousand waiting threads changes one thread, yet the state document
holds them all (~340 KB): sent whole, each write would move and copy all of it. So a state text
of `PARTS_FROM` characters or more is kept in the pieces the state model gives it
(`stmtflow.state.state_parts`: head, one piece per thread, tail): the record's ``state`` field
holds the head and its ``parts`` field is set; hash ``P:parts:<id>`` holds each thread's piece
under its position (integers with gaps, in thread order) and the tail under ``tail``. The state
is the head, the pieces in position order and the tail, joined (byte for byte what was written).

`Cache` remembers, per instance, the pieces of the last version this process read or wrote. A
write of the next version then sends only the pieces between the first and the last that
changed (`stmtflow.stores._sqlite_parts.changed_span`), and a read of a version it knows skips
the pieces. A version is written once (compare-and-set), so an entry for (id, version) is what
the server holds at that version; without one, the write sends every piece.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

from stmtflow.state import state_parts
from stmtflow.stores._sqlite_parts import changed_span

__all__ = ["GAP", "PARTS_FROM", "Cache", "Parts", "assemble", "plan"]

PARTS_FROM = 16 * 1024
"""States shorter than this are kept whole, in the record's ``state`` field."""

GAP = 1 << 20
"""Distance between the positions of pieces written together."""

_CACHE_SIZE = 64


class Parts(NamedTuple):
    """The thread pieces of one instance's state at one version, as stored."""

    version: int
    positions: list[int]
    texts: list[str]
    tail: str


class Cache:
    """The last known `Parts` of recently used instances (bounded, thread-safe)."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._size = size
        self._entries: dict[str, Parts] = {}
        self._lock = threading.Lock()

    def get(self, id: str, version: int) -> Parts | None:
        entry = self._entries.get(id)
        return entry if entry is not None and entry.version == version else None

    def latest(self, id: str) -> Parts | None:
        return self._entries.get(id)

    def put(self, id: str, entry: Parts | None) -> None:
        with self._lock:
            self._entries.pop(id, None)
            if entry is None:
                return
            if len(self._entries) >= self._size:
                self._entries.pop(next(iter(self._entries)), None)
            self._entries[id] = entry


def assemble(head: str, fields: dict[str, str], version: int) -> tuple[str, Parts]:
    """The state text from its head and the ``P:parts:<id>`` hash, and its `Parts`."""
    tail = fields.pop("tail")
    pieces = sorted((int(pos), text) for pos, text in fields.items())
    texts = [text for _, text in pieces]
    return "".join([head, *texts, tail]), Parts(version, [p for p, _ in pieces], texts, tail)


def plan(text: str, old: Parts | None, version: int) -> tuple[str, list[str], Parts | None]:
    """How to store ``text`` as ``version``, given the stored ``old`` parts if known.

    Returns the ``state`` field's value (the head, or the whole text), the script arguments
    (``["whole"]``, or ``[mode, n, positions gone..., m, position, piece, ..., tail]`` with
    mode ``full`` to replace every piece or ``delta`` to change only those) and the new parts.
    """
    parts = state_parts(text) if len(text) >= PARTS_FROM else None
    if parts is None:
        return text, ["whole"], None
    head, threads, tail = parts
    if old is not None:
        start, end = changed_span(old.texts, threads)
        old_end, new_end = len(old.texts) - end, len(threads) - end
        low = old.positions[start - 1] if start else 0
        high = old.positions[old_end] if end else None
        fresh = _between(low, high, new_end - start)
        if fresh is not None:
            gone = old.positions[start:old_end]
            positions = old.positions[:start] + fresh + old.positions[old_end:]
            args = _args("delta", gone, fresh, threads[start:new_end], tail)
            return head, args, Parts(version, positions, threads, tail)
    positions = [GAP * (i + 1) for i in range(len(threads))]
    args = _args("full", [], positions, threads, tail)
    return head, args, Parts(version, positions, threads, tail)


def _between(low: int, high: int | None, count: int) -> list[int] | None:
    """``count`` increasing positions strictly between ``low`` and ``high`` (None: no bound),
    or None when they do not fit."""
    if high is None:
        return [low + GAP * (i + 1) for i in range(count)]
    step = (high - low) // (count + 1)
    if step == 0:
        return None
    return [low + step * (i + 1) for i in range(count)]


def _args(
    mode: str, gone: Sequence[int], positions: Sequence[int], texts: Sequence[str], tail: str
) -> list[str]:
    pairs = [item for pos, text in zip(positions, texts, strict=True) for item in (str(pos), text)]
    return [mode, str(len(gone)), *map(str, gone), str(len(positions)), *pairs, tail]

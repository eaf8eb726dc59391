"""How the SQLite store keeps a large state: one row per thread, rewriting only what changed.

A delivery to one of a hundred waiting threads changes one thread, yet the state document holds
them all. SQLite rewrites every page of a value whose length changed, and a commit costs some
5-10 µs more per 4 KB page written and fsynced: at a thousand threads (340 KB) the write is
most of a delivery. So a state text of `PARTS_FROM` characters or more is stored in the pieces
the state model gives it (`stmtflow.state.state_parts`: head, one piece per thread, tail): the
instance row's ``state`` column keeps the head, table ``stmtflow_state_parts`` one row per
thread, ``(id, pos, text)`` in ``pos`` order, then the tail (the state's progress counter and
teardowns, which change with every step) in the row at position `TAIL`. Each row holds its
piece exactly as given, so the state is ``head + "".join(threads) + tail`` (`whole`) and the
store needs to know nothing of the format. The instance row's ``state_parts`` column says how
many rows it has (0: ``state`` holds the whole text).

A write compares the new thread pieces with the stored ones and writes only those that changed:
the pieces shared at the beginning and the end are skipped in one comparison each
(`changed_span`), and in between a thread whose text is still there keeps its row. A delivery
to one thread writes its row, the tail and the instance row. Positions leave gaps (`GAP`) so
that new threads fit between old ones without renumbering. A text the engine dumped (a
`StateText`) brings its pieces along, and an unchanged thread's piece is the same object as the
stored one, compared by identity.

`PartsCache` remembers, per instance, the pieces of the last version this process read or
wrote, so a read of an instance it just wrote reads the small head row only, and a write need
not read the old pieces to compare. An entry counts only for the very version and write time it
was taken at; anything else reads the rows.
"""

from __future__ import annotations

import operator
import sqlite3
import threading
from collections.abc import Sequence
from itertools import islice, pairwise
from typing import NamedTuple

from stmtflow.state import StateParts, state_parts

__all__ = [
    "GAP",
    "PARTS_FROM",
    "TAIL",
    "PartsCache",
    "Stored",
    "changed_span",
    "parts_to_store",
    "read",
    "row_count",
    "whole",
    "write",
]

TAIL = 1 << 62
"""The position of the tail row, after every thread's."""

PARTS_FROM = 16 * 1024
"""States shorter than this (about 45 waiting threads) are kept whole, in the instance row."""

GAP = 1 << 20
"""Distance between the positions of parts written together."""

_CACHE_SIZE = 64


class Stored(NamedTuple):
    """The pieces of one instance's state at one version, as stored."""

    version: int
    updated_at: str
    """The row's ``updated_at`` text: with the version it pins one write of one record."""
    positions: list[int]
    texts: list[str]
    """The thread pieces, in order, as their rows hold them."""
    tail: str


def parts_to_store(text: str) -> StateParts | None:
    """The pieces to store ``text`` in, or None when it is kept whole (short, or no threads)."""
    if len(text) < PARTS_FROM:
        return None
    return state_parts(text)


def row_count(parts: Sequence[str]) -> int:
    """How many rows of ``stmtflow_state_parts`` a state with these thread pieces takes (one
    per thread, and the tail's)."""
    return len(parts) + 1


def whole(head: str, parts: Sequence[str], tail: str) -> str:
    """The state text from its head, thread pieces and tail."""
    return "".join([head, *parts, tail])


def changed_span(old: Sequence[str], new: Sequence[str]) -> tuple[int, int]:
    """How many parts ``old`` and ``new`` share at their beginning and, after that, at their end.

    Everything in between is what a write replaces (compared in C: a thousand parts take ~20 µs).
    """
    same = list(map(operator.eq, old, new))
    start = same.index(False) if False in same else len(same)
    room = min(len(old), len(new)) - start
    same_end = list(islice(map(operator.eq, reversed(old), reversed(new)), room))
    end = same_end.index(False) if False in same_end else len(same_end)
    return start, end


def _between(low: int, high: int, count: int) -> list[int] | None:
    """``count`` increasing positions strictly between ``low`` and ``high`` (`TAIL`: at the
    end), or None when they do not fit."""
    if high == TAIL:
        placed = [low + GAP * (i + 1) for i in range(count)]
        return placed if not placed or placed[-1] < TAIL else None
    step = (high - low) // (count + 1)
    if step == 0:
        return None
    return [low + step * (i + 1) for i in range(count)]


class PartsCache:
    """The last known `Stored` parts of recently used instances (bounded, thread-safe)."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._size = size
        self._entries: dict[str, Stored] = {}
        self._lock = threading.Lock()

    def get(self, id: str, version: int, updated_at: str) -> Stored | None:
        entry = self._entries.get(id)
        if entry is None or entry.version != version or entry.updated_at != updated_at:
            return None
        return entry

    def put(self, id: str, entry: Stored) -> None:
        with self._lock:
            self._entries.pop(id, None)
            if len(self._entries) >= self._size:
                self._entries.pop(next(iter(self._entries)), None)
            self._entries[id] = entry


def read(conn: sqlite3.Connection, id: str, version: int, updated_at: str) -> Stored | None:
    """The stored parts of ``id``, or None if its rows are not whole (no tail row); call inside
    a transaction that read its instance row."""
    rows = conn.execute(
        "SELECT pos, text FROM stmtflow_state_parts WHERE id = ? ORDER BY pos", (id,)
    ).fetchall()
    if not rows or rows[-1][0] != TAIL:
        return None
    tail = rows.pop()[1]
    return Stored(version, updated_at, [r[0] for r in rows], [r[1] for r in rows], tail)


def write(
    conn: sqlite3.Connection,
    id: str,
    old: Stored | None,
    parts: list[str],
    tail: str,
    version: int,
    updated_at: str,
) -> Stored:
    """Make the rows of ``id`` hold ``parts`` and ``tail``, given the ``old`` ones (None: there
    are none), as of ``version`` written at ``updated_at``. Call inside the write's
    transaction."""
    if old is None or old.tail != tail:
        conn.execute(
            "INSERT INTO stmtflow_state_parts (id, pos, text) VALUES (?, ?, ?) "
            "ON CONFLICT (id, pos) DO UPDATE SET text = excluded.text",
            (id, TAIL, tail),
        )
    old_positions, old_texts = (old.positions, old.texts) if old is not None else ([], [])
    start, end = changed_span(old_texts, parts)
    old_end, new_end = len(old_texts) - end, len(parts) - end
    low = old_positions[start - 1] if start else 0
    high = old_positions[old_end] if end else TAIL
    placed = _place(
        conn,
        id,
        old_positions[start:old_end],
        old_texts[start:old_end],
        parts[start:new_end],
        low,
        high,
    )
    if placed is None:  # no room left between the neighbours: number them all afresh
        conn.execute("DELETE FROM stmtflow_state_parts WHERE id = ? AND pos < ?", (id, TAIL))
        positions = [GAP * (i + 1) for i in range(len(parts))]
        _insert(conn, id, positions, parts)
    else:
        positions = old_positions[:start] + placed + old_positions[old_end:]
    return Stored(version, updated_at, positions, parts, tail)


def _place(
    conn: sqlite3.Connection,
    id: str,
    old_positions: list[int],
    old_texts: list[str],
    new: list[str],
    low: int,
    high: int,
) -> list[int] | None:
    """Write the rows between positions ``low`` and ``high`` so they hold ``new`` (they held
    ``old_texts``); the positions of ``new``, or None if they must be numbered afresh.

    A thread's text names its id, so an unchanged thread is one whose text is still there: it
    keeps its row. Between two kept rows, the rows that went are rewritten with the texts that
    came, in order; what is left over is deleted or inserted in the gap.
    """
    where = dict(zip(old_texts, old_positions, strict=True))
    kept = [where.get(text) for text in new]
    anchors = [pos for pos in kept if pos is not None]
    if any(b <= a for a, b in pairwise(anchors)):
        return None  # reordered (the interpreter never does): number them afresh
    taken = set(anchors)
    spare = [pos for pos in old_positions if pos not in taken]
    gone: list[int] = []
    rewritten: list[tuple[str, str, int]] = []
    added: list[tuple[int, str]] = []
    placed: list[int] = []
    s = i = 0
    while i < len(new):
        if kept[i] is not None:
            placed.append(kept[i])  # type: ignore[arg-type]
            i += 1
            continue
        j = i
        while j < len(new) and kept[j] is None:
            j += 1
        below = placed[-1] if placed else low
        next_kept = kept[j] if j < len(new) else None
        above = high if next_kept is None else next_kept
        while s < len(spare) and spare[s] < below:  # a gap that lost rows and gained none
            gone.append(spare[s])
            s += 1
        while i < j and s < len(spare) and spare[s] < above:
            rewritten.append((new[i], id, spare[s]))
            placed.append(spare[s])
            s, i = s + 1, i + 1
        fresh = _between(placed[-1] if placed else low, above, j - i)
        if fresh is None:
            return None
        added += zip(fresh, new[i:j], strict=True)
        placed += fresh
        i = j
    gone += spare[s:]
    conn.executemany(
        "DELETE FROM stmtflow_state_parts WHERE id = ? AND pos = ?", [(id, pos) for pos in gone]
    )
    conn.executemany("UPDATE stmtflow_state_parts SET text = ? WHERE id = ? AND pos = ?", rewritten)
    _insert(conn, id, [pos for pos, _ in added], [text for _, text in added])
    return placed


def _insert(conn: sqlite3.Connection, id: str, positions: list[int], texts: list[str]) -> None:
    conn.executemany(
        "INSERT INTO stmtflow_state_parts (id, pos, text) VALUES (?, ?, ?)",
        [(id, pos, text) for pos, text in zip(positions, texts, strict=True)],
    )

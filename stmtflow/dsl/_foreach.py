"""`ForEach`: one thread per item of a list, at most ``max_concurrency`` alive, joined at the end.

The thread standing at a ``ForEach`` keeps only how far it is (`ForEachProgress`: the index of
the next item and how many there are), never the items: each time it starts the next ones it
reads ``items`` again (the list in the definition, or the callable over the data) and takes
them by index. A started item lives on its own thread (``Thread.arg``), an ended one nowhere.
So the parent's state is O(live threads) whatever the number of items, and the items are
written once, where they already are (the definition or the data), not with every checkpoint.
The price is that the list must not change while the ``ForEach`` runs: a change of its length
is refused (a ``DefinitionError``, nothing of the move applied); see docs/composition.md.

Item thread ids are ``f"{name}[{index}]"`` for a ``ForEach`` of the main thread and
``f"{thread}/{name}[{index}]"`` for one reached by another thread (``index`` counts from 0 in the
items list); their group is that id without ``[index]``.

Example:
    >>> from stmtflow.dsl import S, Step
    >>> each = ForEach("mail", ["a", "b"], lambda who: S(Step("send", print)), max_concurrency=1)
    >>> each.name, each.max_concurrency
    ('mail', 1)
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stmtflow.dsl._checks import callable_problems, name_problems, what
from stmtflow.dsl._go import json_value, one_argument_problems
from stmtflow.dsl._kind import Cursor, Drawing, Exit, Kind, Site, register
from stmtflow.state import MAIN_THREAD, ForEachProgress, Thread, ThreadStatus

if TYPE_CHECKING:
    from stmtflow.dsl._section import Section

__all__ = ["ForEach", "foreach_group"]


@dataclass(frozen=True, slots=True, init=False)
class ForEach:
    """Run ``body(item)`` on a thread of its own for each item, and wait until all ended.

    ``items`` is a list of JSON-ready values, or a zero-argument callable returning one (read
    when the ``ForEach`` is reached and again each time the next items start: keep the list
    as it is until the ``ForEach`` ends). At most ``max_concurrency`` item threads are alive at
    once (None: all start together); the next item starts as one ends.

    Example:
        >>> from stmtflow.dsl import S, Step
        >>> ForEach("mail", lambda: [1, 2], lambda n: S(Step("send", print))).max_concurrency
    """

    name: str
    items: list[Any] | Callable[[], list[Any]] = field(compare=False, repr=False)
    body: Callable[[Any], Section] = field(compare=False, repr=False)
    max_concurrency: int | None

    def __init__(
        self,
        name: str,
        items: list[Any] | Callable[[], list[Any]],
        body: Callable[[Any], Section],
        *,
        max_concurrency: int | None = None,
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "max_concurrency", max_concurrency)


def _bound_problems(bound: object) -> list[str]:
    if bound is None or (type(bound) is int and bound >= 1):
        return []
    return [f"max_concurrency must be None or an int of at least 1, got {what(bound)}"]


def _value(value: object) -> str:
    """A value in a message: its type and a clipped repr (``tuple (1, 2)``)."""
    return f"{type(value).__name__} {reprlib.repr(value)}"


def foreach_group(name: str, thread_id: str) -> str:
    """The group of the item threads of ForEach ``name`` reached by thread ``thread_id``."""
    return name if thread_id == MAIN_THREAD else f"{thread_id}/{name}"


class ForEachKind(Kind[ForEach]):
    statement = ForEach
    starts_thread = True
    blocks = True
    rests = frozenset({ThreadStatus.RESUMING, ThreadStatus.WAITING_CONDITION})

    def names(self, stmt: ForEach) -> list[str]:
        return [stmt.name]

    def body_fn(self, stmt: ForEach) -> Callable[[Any], Any]:
        return stmt.body

    def problems(self, stmt: ForEach, site: Site) -> list[str]:
        problems = name_problems(stmt.name)
        items = stmt.items
        if callable(items):
            problems += callable_problems("items", items, required=True)
        elif not isinstance(items, list):
            problems.append(
                f"items must be a list or a zero-argument callable, got {_value(items)}"
            )
        problems += one_argument_problems("body", stmt.body)
        return problems + _bound_problems(stmt.max_concurrency)

    def what_runs(self, stmt: ForEach) -> str:
        return f"the items of ForEach {stmt.name!r}"

    def enter(self, stmt: ForEach, cursor: Cursor) -> ForEach | None:
        bound = _bound_problems(stmt.max_concurrency)  # a bound from the data is checked here
        if bound:
            raise cursor.fail(f"ForEach {stmt.name!r}: {bound[0]}")
        items = json_value(self._items(stmt, cursor), f"the items of ForEach {stmt.name!r}")
        group = foreach_group(stmt.name, cursor.thread.id)
        progress = ForEachProgress(group=group, next=0, count=len(items))
        return self._fill(stmt, progress, cursor, items)

    def resume(self, stmt: ForEach, thread: Thread, cursor: Cursor) -> ForEach | None:
        """Woken because an item thread ended: start the next items, or go on when all ended."""
        progress = thread.foreach
        if progress is None:  # nothing was started (cannot rest here without progress)
            return None
        return self._fill(stmt, progress, cursor, None)

    def ready(self, stmt: ForEach, thread: Thread, count: Callable[[str], tuple[int, int]]) -> bool:
        progress = thread.foreach
        if progress is None:
            return True
        alive, _ = count(progress.group)
        bound = stmt.max_concurrency
        return not alive or (progress.left() > 0 and (bound is None or alive < bound))

    def _items(self, stmt: ForEach, cursor: Cursor) -> list[Any]:
        """``items`` as they are now (the callable evaluated), checked to be a list."""
        items = stmt.items() if callable(stmt.items) else stmt.items
        if not isinstance(items, list):
            raise cursor.fail(f"ForEach {stmt.name!r}: items must be a list, got {_value(items)}")
        return items

    def _next(
        self,
        stmt: ForEach,
        progress: ForEachProgress,
        cursor: Cursor,
        items: list[Any] | None,
        room: int,
    ) -> list[Any]:
        """The items of the next ``room`` threads, from ``progress.next`` on: read again from
        ``stmt.items`` (``items``: already read by this move), or, in a state written before
        `ForEachProgress.count` existed, its ``pending`` items."""
        if progress.count is None:
            return list(progress.pending[:room])
        if items is None:
            items = self._items(stmt, cursor)
            if len(items) != progress.count:
                raise cursor.fail(
                    f"ForEach {stmt.name!r}: its items changed while it ran ({progress.count} "
                    f"when it was reached, {len(items)} now); it reads them again each time it "
                    "starts the next ones, so keep the list as it is until the ForEach ends "
                    "(or copy it into a field of its own)"
                )
        what_ = f"the items of ForEach {stmt.name!r}"
        return [json_value(item, what_) for item in items[progress.next : progress.next + room]]

    def _fill(
        self, stmt: ForEach, progress: ForEachProgress, cursor: Cursor, items: list[Any] | None
    ) -> ForEach | None:
        alive, _ = cursor.group_count(progress.group)
        room = progress.left()
        if stmt.max_concurrency is not None:
            room = min(room, max(stmt.max_concurrency - alive, 0))
        if room:
            for offset, item in enumerate(self._next(stmt, progress, cursor, items, room)):
                index = progress.next + offset
                cursor.spawn(stmt, f"{progress.group}[{index}]", arg=item, group=progress.group)
        if alive + room == 0:  # every item ran: joined
            cursor.keep(None)
            cursor.close_group(progress.group, end_rest=False)
            return None
        if room:
            update = {"next": progress.next + room, "pending": progress.pending[room:]}
            progress = progress.model_copy(update=update)
        cursor.keep(progress)
        return stmt

    def json(self, stmt: ForEach, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        items = "lazy" if callable(stmt.items) else "list"  # not its length: data, not shape
        return {
            "type": self.label,
            "name": stmt.name,
            "items": items,
            "body": "lazy",
            "max_concurrency": stmt.max_concurrency,
        }

    def draw(self, stmt: ForEach, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        bound = "" if stmt.max_concurrency is None else f", at most {stmt.max_concurrency} at once"
        head = drawing.box(
            entry, f"ForEach {stmt.name}\none thread per item{bound}", "go", stmt.name
        )
        drawing.built_lane(head, f"thread {stmt.name}[i], one per item", "body(item)", stmt.name)
        return [Exit(head, "all ended")]


register(ForEachKind())

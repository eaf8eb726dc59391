"""Thread bodies built from a thread's arg: ``Go(name, fn, arg=...)`` and ``ForEach`` items.

Such a body is not part of the definition's tree: it is built by calling the statement's
callable with the thread's own ``arg`` whenever the interpreter needs it (after each rebuild of
``definition()``), and indexed as a `Program` of its own, in which the thread moves the way the
main thread moves in the definition. `Bodies` keeps those programs for one tree of the
definition: a rebuilt tree starts afresh, so a body sees the data as the latest action left it.
"""

from __future__ import annotations

from typing import Any

from stmtflow.core._effects import describe
from stmtflow.core._program import Program
from stmtflow.dsl._kind import kind_of, rules
from stmtflow.dsl._section import Section
from stmtflow.errors import DefinitionError, ExecutionError
from stmtflow.state import MAIN_THREAD, Thread, WaitEvent

__all__ = ["Bodies"]


class Bodies:
    """The programs threads move through, for one tree of the definition (``root``).

    Args:
        root: the definition's program.
        cache_key: the workflow class (body indexes are cached per class and statement name).
    """

    __slots__ = ("_by_thread", "cache_key", "root")

    def __init__(self, root: Program, cache_key: Any) -> None:
        self.root = root
        self.cache_key = cache_key
        self._by_thread: dict[int, tuple[Thread, Program]] = {}
        """By thread identity (the thread kept so its id is not reused): its program."""

    def of(self, thread: Thread) -> Program:
        """The program ``thread`` moves through: the definition's, or its body built from
        its arg.

        Raises:
            ExecutionError: building the body raised.
            DefinitionError: the body is invalid.
        """
        if thread.name == MAIN_THREAD:
            return self.root
        kept = self._by_thread.get(id(thread))
        if kept is not None and kept[0] is thread:
            return kept[1]
        program = self.build(thread.name, thread.arg, f"{self.root.where}, thread {thread.id!r}")
        self._by_thread[id(thread)] = (thread, program)
        return program

    def build(self, name: str, arg: Any, who: str) -> Program:
        """The body of the threads of statement ``name`` for ``arg``; the definition itself when
        that statement's body is a block of the tree (or no longer exists: the mismatch check
        reports that)."""
        found = self.root.find(name)
        fn = None if found is None else rules(found[1]).body_fn(found[1])
        if fn is None:
            return self.root
        try:
            body = fn(arg)
        except Exception as exc:
            raise ExecutionError(
                f"{who}: building the body of {name!r} from its arg {arg!r} raised {describe(exc)}"
            ) from exc
        if not isinstance(body, Section) and kind_of(body) is not None:
            body = Section((body,))
        if not isinstance(body, Section):
            raise DefinitionError(
                f"{who}: the body of {name!r} must be built as a Section (use S(...)), "
                f"got {type(body).__name__}"
            )
        where = self.root.where  # a move in the body names the workflow and the thread
        try:
            return Program(body, (self.cache_key, name), where, thread_body=True)
        except DefinitionError as exc:
            built = f"{who}, the body of {name!r} built from arg {arg!r}: "
            raise DefinitionError(
                [built + issue.removeprefix(f"{where}: ") for issue in exc.issues]
            ) from None

    def handler(self, event: WaitEvent) -> Any:
        """The handler of an armed or ended event: found in the body it was armed in."""
        if event.body_of is None:
            return self.root.handler(event.req.name)
        name, arg = event.body_of
        return self.build(name, arg, f"{self.root.where}, thread {event.req.thread_id!r}").handler(
            event.req.name
        )

    def origin(self, thread: Thread) -> tuple[str, Any] | None:
        """What an event of ``thread`` awaiting teardown keeps to find its handler again
        (`WaitEvent.body_of`), or None when the definition's tree has it."""
        if self.of(thread) is self.root:
            return None
        return (thread.name, thread.arg)

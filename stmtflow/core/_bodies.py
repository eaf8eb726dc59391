"""Thread bodies built from a thread's arg: ``Go(name, fn, arg=...)`` and ``ForEach`` items.

Such a body is not part of the definition's tree: it is built by calling the statement's
callable with the thread's own ``arg`` whenever the interpreter needs it (after each rebuild of
``definition()``), and indexed as a `Program` of its own, in which the thread moves the way the
main thread moves in the definition. A thread started *inside* such a body finds its ``Go``
there: its `Thread.within` chain names the bodies around it, outermost first, each by the
``(name, arg)`` of the thread it is the body of. `Bodies` keeps those programs for one tree of
the definition: a rebuilt tree starts afresh, so a body sees the data as the latest action
left it.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeAlias

from stmtflow.core._effects import describe
from stmtflow.core._program import Program
from stmtflow.dsl._kind import kind_of, rules
from stmtflow.dsl._section import Section
from stmtflow.errors import DefinitionError, ExecutionError
from stmtflow.state import MAIN_THREAD, Thread, WaitEvent

__all__ = ["Bodies", "Chain", "Place"]

Chain: TypeAlias = tuple[tuple[str, Any], ...]
"""Bodies built from args, outermost first, each the ``(name, arg)`` of its thread."""


class Place(NamedTuple):
    """Where a thread moves: the program, whether the thread's body is that program's whole
    tree (the main thread, a body built from its arg) or a ``Go`` inside it, and the chain that
    builds the program (empty: the definition)."""

    program: Program
    rooted: bool
    chain: Chain


class Bodies:
    """The programs threads move through, for one tree of the definition (``root``).

    Args:
        root: the definition's program.
        cache_key: the workflow class (body indexes are cached per class and statement name).
    """

    __slots__ = ("_by_thread", "_chains", "cache_key", "root")

    def __init__(self, root: Program, cache_key: Any) -> None:
        self.root = root
        self.cache_key = cache_key
        self._by_thread: dict[int, tuple[Thread, Place]] = {}
        """By thread identity (the thread kept so its id is not reused): where it moves."""
        self._chains: dict[str, Program] = {}
        """Programs of chains asked for by an ended thread's events, by the chain's repr."""

    def place(self, thread: Thread) -> Place:
        """Where ``thread`` moves (`Place`).

        Raises:
            ExecutionError: building a body raised.
            DefinitionError: a body is invalid.
        """
        if thread.name == MAIN_THREAD:
            return Place(self.root, True, ())
        kept = self._by_thread.get(id(thread))
        if kept is not None and kept[0] is thread:
            return kept[1]
        who = f"{self.root.where}, thread {thread.id!r}"
        within: Chain = thread.within or ()
        container = self.build(within, who)
        program = self._built(container, thread.name, thread.arg, who)
        if program is container:  # its Go's body is a block of the container's tree
            place = Place(container, False, within)
        else:
            place = Place(program, True, (*within, (thread.name, thread.arg)))
        self._by_thread[id(thread)] = (thread, place)
        return place

    def of(self, thread: Thread) -> Program:
        """The program ``thread`` moves through."""
        return self.place(thread).program

    def build(self, chain: Chain, who: str) -> Program:
        """The program of ``chain``: the definition, or the innermost body it names."""
        program = self.root
        for name, arg in chain:
            program = self._built(program, name, arg, who)
        return program

    def handler(self, event: WaitEvent) -> Any:
        """The handler of an armed or ended event: found in the body it was armed in."""
        if not event.body_of:
            return self.root.handler(event.req.name)
        return self.built_for(event.body_of, event.req.thread_id).handler(event.req.name)

    def built_for(self, chain: Chain, thread_id: str) -> Program:
        """The program of ``chain`` kept from an ended thread's record (an event awaiting
        teardown, a step to compensate) of thread ``thread_id``; built once per chain."""
        key = repr(chain)
        program = self._chains.get(key)
        if program is None:
            who = f"{self.root.where}, thread {thread_id!r}"
            program = self._chains[key] = self.build(chain, who)
        return program

    def _built(self, container: Program, name: str, arg: Any, who: str) -> Program:
        """The body that statement ``name`` of ``container`` builds for ``arg``; ``container``
        itself when that statement's body is a block of its tree (or when it no longer exists:
        the mismatch check reports that)."""
        found = container.find(name)
        fn = None if found is None else rules(found[1]).body_fn(found[1])
        if fn is None:
            return container
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

"""A built definition, indexed by name, and the rules for moving a thread through it.

A thread's position is the name of a statement. `Program` finds that statement by a path of child
indices (cached per workflow class and checked on every use, so a rebuilt tree of the same shape
costs a few dictionary look-ups, not a walk), and `Program.advance` computes a thread's next
move: from where it stands to its next resting statement (a step, a wait, a condition) or the
end of its body. Moving evaluates conditions and ``Go`` ids but changes nothing: the interpreter
applies the result.

What each statement does to a moving thread is its kind's rule (`stmtflow.dsl._kind.Kind.enter`,
``after`` and ``resume``, beside the statement class); this module only keeps the name index
and the checks of stored positions. The `_Cursor` those rules move is `stmtflow.core._cursor`'s,
the `Move` it hands the interpreter `stmtflow.core._move`'s (both re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from stmtflow.analysis._validate import definition_problems
from stmtflow.core._cursor import _Cursor
from stmtflow.core._move import KEEP_AS_IS, Counts, Move, Outcome, Path, Scope, Spawn
from stmtflow.dsl._escalation import ESCALATION, escalated_step, escalation_event
from stmtflow.dsl._kind import Ended, kind_of, kinds, rules
from stmtflow.dsl._statements import On, Section, Statement, Step, Wait
from stmtflow.errors import DefinitionError, DefinitionMismatch, ExecutionError
from stmtflow.state import MAIN_THREAD, CaughtError, Frame, State, Thread, ThreadStatus

__all__ = ["KEEP_AS_IS", "Counts", "Ended", "Move", "Outcome", "Program", "Scope", "Spawn"]


@dataclass(slots=True)
class _Index:
    names: dict[str, Path]
    events: dict[str, Path]


_index_cache: dict[Any, _Index] = {}


def _build_index(root: Section, thread_body: bool = False) -> _Index:
    problems = definition_problems(root, thread_body=thread_body)
    if problems:
        raise DefinitionError(problems)
    names: dict[str, Path] = {}
    events: dict[str, Path] = {}
    stack: list[tuple[Statement, Path]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        kind = rules(node)
        table = events if kind.is_event else names
        for name in kind.names(node):
            table[name] = path
        for i, child in enumerate(kind.children(node)):
            stack.append((child, (*path, i)))
    return _Index(names, events)


def _kinds_resting(status: ThreadStatus) -> str:
    """The kinds a thread of ``status`` may stand on, for messages: ``Step or Wait``."""
    return " or ".join(kind.label for kind in kinds() if status in kind.rests)


def _escalated(thread: Thread, node: Statement) -> bool:
    """Whether ``thread`` waits at step ``node`` for an operator: on its escalation event only."""
    if not isinstance(node, Step) or thread.status is not ThreadStatus.WAITING_EVENT:
        return False
    event = escalation_event(node.name)
    return bool(thread.wait_events) and all(e.req.name == event for e in thread.wait_events)


class Program:
    """One built definition tree with a name index.

    Args:
        root: what ``definition()`` returned.
        cache_key: the index of a previous tree with this key is reused while it still fits.
        where: prefix for error messages, naming the workflow.
        thread_body: the tree is one thread's body built from its arg (``Go(name, fn)``, a
            ``ForEach``), in which that thread moves as the main thread does in a definition
            (a thread started inside it moves from its ``Go``, as in a definition).
    """

    __slots__ = (
        "_chains",
        "_checked",
        "_events",
        "_index",
        "_names",
        "cache_key",
        "root",
        "thread_body",
        "where",
    )

    def __init__(
        self, root: Section, cache_key: Any, where: str, *, thread_body: bool = False
    ) -> None:
        if not isinstance(root, Section):
            raise DefinitionError(
                f"{where}: definition() must return a Section (use S(...)), "
                f"got {type(root).__name__}"
            )
        self.root = root
        self.cache_key = cache_key
        self.where = where
        self.thread_body = thread_body
        index = _index_cache.get(cache_key)
        if index is None:
            try:
                index = _build_index(root, thread_body)
            except DefinitionError as exc:  # name the workflow (and thread) in each problem
                raise DefinitionError([f"{where}: {issue}" for issue in exc.issues]) from None
            _index_cache[cache_key] = index
        self._index = index
        # Per tree (statements are immutable): resolved look-ups by name, the statements from the
        # root down to each resolved path, and mismatch verdicts by the parts of a thread they
        # depend on, so a thousand threads waiting alike cost one check.
        self._names: dict[str, tuple[Path, Statement] | None] = {}
        self._events: dict[str, tuple[Path, On] | None] = {}
        self._chains: dict[Path, tuple[Statement, ...]] = {}
        self._checked: dict[tuple[Any, ...], list[str]] = {}

    # -- look-ups ---------------------------------------------------------------------------------

    def node(self, path: Path) -> Statement | None:
        """The statement at ``path``, or None when the path leads nowhere."""
        chain = self._walk_path(path)
        return None if chain is None else chain[-1]

    def _walk_path(self, path: Path) -> tuple[Statement, ...] | None:
        """The statements from the root down to ``path`` (cached), or None if it leads nowhere."""
        chain = self._chains.get(path)
        if chain is None:
            nodes: list[Statement] = [self.root]
            try:
                for i in path:
                    kind = kind_of(nodes[-1])
                    if kind is None:
                        return None
                    nodes.append(kind.children(nodes[-1])[i])
            except IndexError:
                return None
            chain = self._chains[path] = tuple(nodes)
        return chain

    def _resolve(self, table: Literal["names", "events"], name: str) -> tuple[Path, Any] | None:
        for attempt in range(2):
            path = getattr(self._index, table).get(name)
            chain = None if path is None else self._walk_path(path)
            if chain is not None:
                node = chain[-1]
                kind = kind_of(node)
                if (
                    kind is not None
                    and kind.is_event == (table == "events")
                    and name in kind.names(node)
                ):
                    return path, node
            if attempt == 0:
                # The index was built for a tree of another shape: index this one.
                self._index = _index_cache[self.cache_key] = _build_index(
                    self.root, self.thread_body
                )
        return None

    def find(self, name: str) -> tuple[Path, Statement] | None:
        """The statement named ``name`` (a step, wait, condition, sleep, loop or ``Go``)."""
        names = self._names
        if name not in names:
            names[name] = self._resolve("names", name)
        return names[name]

    def find_event(self, event: str) -> tuple[Path, On] | None:
        """The ``On`` that handles ``event`` (a ``Sleep``'s timer is one too).

        A step's escalation event (``f"{step}.escalation"``) is found at the step: an ``On``
        with the `Escalation` handler, which no definition spells out.
        """
        events = self._events
        if event not in events:
            step = escalated_step(event)
            at = None if step is None or event in self._index.events else self.find(step)
            if at is not None and isinstance(at[1], Step):
                events[event] = (at[0], On(event, ESCALATION))
            else:
                events[event] = self._resolve("events", event)
        return events[event]

    def handler(self, event: str) -> Any:
        """The handler object of ``event``; `DefinitionMismatch` when no statement has it."""
        found = self.find_event(event)
        if found is None:
            raise DefinitionMismatch(f"{self.where}: the definition has no event {event!r}")
        return found[1].handler

    def wait_of(self, thread: Thread) -> Wait:
        """The ``Wait`` (or ``Sleep``) a waiting thread stands at."""
        found = self.find(thread.cur_step)
        node = found[1] if found else None
        if isinstance(node, Wait):
            return node
        raise DefinitionMismatch(f"{self.where}: no wait named {thread.cur_step!r}")

    # -- checking stored state --------------------------------------------------------------------

    def mismatches(
        self, state: State, places: Callable[[Thread], tuple[Program, bool]] | None = None
    ) -> list[str]:
        """Every live position, thread or event of ``state`` this definition no longer has.

        ``places`` gives the program a thread moves through when a body built from an arg is
        involved (`stmtflow.core._bodies.Bodies.place`), and whether its body is that
        program's whole tree; without it such a thread's position is not checked.
        """
        problems: list[str] = []
        for thread in state.threads:
            if thread.name != MAIN_THREAD and (thread.within or self._builds_body(thread.name)):
                if places is None:
                    verdict = [] if thread.within else self._go_mismatches(thread)
                else:
                    program, rooted = places(thread)
                    verdict = program._thread_mismatches(thread, rooted)
                problems.extend(f"thread {thread.id!r}: {problem}" for problem in verdict)
                continue
            signature = (
                thread.name,
                thread.cur_step,
                thread.status,
                thread.cur_callback,
                *(event.req.name for event in thread.wait_events),
            )
            cached = self._checked.get(signature)
            if cached is None:
                cached = self._checked[signature] = self._thread_mismatches(thread)
            problems.extend(f"thread {thread.id!r}: {problem}" for problem in cached)
        for event in state.teardowns:
            if event.body_of is None and self.find_event(event.req.name) is None:
                problems.append(f"event {event.req.name!r} awaiting teardown no longer exists")
        return problems

    def _builds_body(self, name: str) -> bool:
        """Whether the statement ``name`` starts threads whose body is built from their arg."""
        found = self.find(name)
        return found is not None and rules(found[1]).body_fn(found[1]) is not None

    def _go_mismatches(self, thread: Thread) -> list[str]:
        go = self.find(thread.name)
        if go is None or not rules(go[1]).starts_thread:
            return [f"its Go statement {thread.name!r} no longer exists"]
        return []

    def _thread_mismatches(self, thread: Thread, rooted: bool | None = None) -> list[str]:
        """What ``thread`` stands on that the tree lacks (messages without the thread's id);
        ``rooted``: its body is the whole tree (default: for the main thread)."""
        root: Path = ()
        if not (thread.name == MAIN_THREAD if rooted is None else rooted):
            go = self.find(thread.name)
            if go is None or not rules(go[1]).starts_thread:
                return [f"its Go statement {thread.name!r} no longer exists"]
            root = go[0]
        if not thread.cur_step:
            return []
        found = self.find(thread.cur_step)
        if found is None:
            return [f"its position {thread.cur_step!r} no longer exists"]
        path, node = found
        kind = rules(node)
        if thread.status not in kind.rests and not _escalated(thread, node):
            return [
                f"{thread.cur_step!r} is now a {kind.label}, not a {_kinds_resting(thread.status)}"
            ]
        if self._thread_root(path) != root:
            return [f"{thread.cur_step!r} is no longer inside the body of {thread.name!r}"]
        events: set[str] = set()  # the events the statement it stands at arms
        if isinstance(node, Step):
            events.add(escalation_event(node.name))
        for kid in kind.children(node):
            rule = rules(kid)
            if rule.is_event:
                events.update(rule.names(kid))
        problems = [
            f"event {event.req.name!r} of {thread.cur_step!r} is gone"
            for event in thread.wait_events
            if event.req.name not in events
        ]
        if thread.cur_callback is not None and thread.cur_callback not in events:
            problems.append(
                f"event {thread.cur_callback!r} that fired at {thread.cur_step!r} is gone"
            )
        return problems

    def _thread_root(self, path: Path) -> Path:
        """The path of the innermost ``Go`` around ``path`` (``()`` for the main thread)."""
        chain = self._chain(path)  # chain[k] is the statement at path[:k]
        for depth in range(len(path) - 1, 0, -1):
            if rules(chain[depth]).starts_thread:
                return path[:depth]
        return ()

    # -- moving -----------------------------------------------------------------------------------

    def _chain(self, path: Path) -> list[Statement]:
        """The statements from the root down to the one at ``path`` (both included)."""
        chain = self._walk_path(path)
        assert chain is not None, path
        return list(chain)

    def _body_depth(self, thread: Thread, rooted: bool | None) -> tuple[Path, int]:
        """The path of the ``Go`` whose body ``thread`` runs (``()`` when its body is the whole
        tree) and the depth of that body in the tree (0 then). ``rooted``: as `advance`'s."""
        if thread.name == MAIN_THREAD if rooted is None else rooted:
            return (), 0
        found_go = self.find(thread.name)
        assert found_go is not None
        return found_go[0], len(found_go[0]) + 1

    def advance(
        self,
        thread: Thread,
        threads: list[Thread],
        counts: Counts,
        rooted: bool | None = None,
        *,
        pc: int = 0,
    ) -> Move:
        """Compute ``thread``'s next move from where it stands. Changes nothing.

        ``counts`` tells a ``Join`` or ``ForEach`` how many threads of a group live and ended;
        ``rooted`` says the thread's body is the whole tree (default: for the main thread),
        else it is the body of the ``Go`` named like the thread. ``pc`` is the execution's
        ``pc`` the move will have: a ``Try`` entered records it.

        Raises:
            ExecutionError: a lazy condition, ``Go`` id or arg, or ``ForEach`` items raised.
            DefinitionError: an iteration reached no step or wait, or a ``Go`` id is taken.
        """
        go_path, body_depth = self._body_depth(thread, rooted)
        if not thread.cur_step:  # before its first move: at the start of its body
            start = (*go_path, 0) if body_depth else ()
            cursor = _Cursor(self, thread, threads, start, body_depth, counts, pc, entering=True)
        else:
            found = self.find(thread.cur_step)
            assert found is not None
            cursor = _Cursor(self, thread, threads, found[0], body_depth, counts, pc)
        return self._moved(cursor)

    def catcher(
        self, thread: Thread, error: BaseException, rooted: bool | None = None
    ) -> tuple[Path, int, int] | None:
        """Where the first catch that takes ``error``, raised by the step ``thread`` stands at,
        is: the path of its ``Try``, the catch's child index, and how many of the thread's
        frames stay (the catching ``Try``'s included). None when no ``Try`` around the step,
        within the thread's own body, takes it. Innermost ``Try`` first; runs no user code.

        A failure inside a catch body is not taken by that same ``Try``, as in Python: it goes
        to the ``Try``s around it.
        """
        found = self.find(thread.cur_step)
        assert found is not None
        path = found[0]
        chain = self._chain(path)  # chain[k] is the statement at path[:k]
        _, body_depth = self._body_depth(thread, rooted)
        frames = len(thread.frames)
        for depth in range(len(path) - 1, body_depth - 1, -1):
            node = chain[depth]
            kind = rules(node)
            if not kind.guards:
                continue
            index = kind.catches(node, error) if path[depth] == 0 else None
            if index is not None:
                return path[:depth], index, frames
            frames = max(frames - 1, 0)  # the failure leaves this Try for the ones around it
        return None

    def catch(
        self,
        thread: Thread,
        threads: list[Thread],
        error: BaseException,
        caught: CaughtError,
        pc: int,
        counts: Counts,
        rooted: bool | None = None,
    ) -> Move | None:
        """The move (numbered ``pc``) into the first catch that takes ``error`` (`catcher`),
        its frame recording ``caught``; None when no catch takes it. Changes nothing."""
        found = self.catcher(thread, error, rooted)
        if found is None:
            return None
        try_path, index, kept = found
        frames = list(thread.frames[:kept])
        entered = frames[-1].pc if frames else pc
        frames[-1:] = [Frame(pc=entered, error=caught)]
        _, body_depth = self._body_depth(thread, rooted)
        cursor = _Cursor(self, thread, threads, try_path, body_depth, counts, pc)
        cursor.frames = frames
        node = cursor.chain[-1]
        cursor.into(index, rules(node).children(node)[index])
        return self._moved(cursor)

    def _moved(self, cursor: _Cursor) -> Move:
        try:
            outcome = cursor.move()
            return Move(outcome, cursor.spawns, cursor.closes, cursor.keeping, cursor.scope())
        except (DefinitionError, ExecutionError):
            raise
        except Exception as exc:
            node = cursor.chain[-1]
            raise ExecutionError(
                f"{cursor.who}: {rules(node).what_runs(node)} raised {exc!r}"
            ) from exc

"""A built definition, indexed by name, and the rules for moving a thread through it.

A thread's position is the name of a statement. `Program` finds that statement by a path of child
indices (cached per workflow class and checked on every use, so a rebuilt tree of the same shape
costs a few dictionary look-ups, not a walk), and `Program.advance` computes a thread's next
move: from where it stands to its next resting statement (a step, a wait, a condition) or the
end of its body. Moving evaluates conditions and ``Go`` ids but changes nothing: the interpreter
applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, assert_never

from stmtflow.analysis._validate import definition_problems
from stmtflow.analysis._walk import children
from stmtflow.dsl._statements import (
    Break,
    Case,
    Continue,
    Default,
    For,
    Go,
    If,
    On,
    Return,
    Section,
    Sleep,
    Statement,
    Step,
    Switch,
    Wait,
    WaitFor,
)
from stmtflow.errors import DefinitionError, DefinitionMismatch, ExecutionError
from stmtflow.state import MAIN_THREAD, State, Thread, ThreadStatus

__all__ = ["Ended", "Move", "Outcome", "Program", "Spawn", "truth"]

Path: TypeAlias = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Ended:
    """The thread reached the end of its body or a ``Return``."""

    returned: bool


_ENDED = Ended(returned=False)
_RETURNED = Ended(returned=True)

Outcome: TypeAlias = Step | Wait | WaitFor | Ended
"""Where a move leaves a thread: at a step (its next move runs it), at a wait (a ``Sleep`` is
given as its equivalent ``Wait``), at a ``WaitFor`` until its condition is true, or ended. The
statement itself is the tag, so a move allocates no result object."""

Spawn: TypeAlias = tuple[Go, str]
"""A thread a move starts: the ``Go`` and the new thread's id."""

Move: TypeAlias = tuple[Outcome, list[Spawn]]
"""What a thread's next move does: where it comes to rest, and the threads it starts."""


@dataclass(slots=True)
class _Index:
    names: dict[str, Path]
    events: dict[str, Path]


def truth(cond: Any) -> bool:
    """Evaluate a condition: a bool as is, a callable (lazy) by calling it."""
    return bool(cond()) if callable(cond) else bool(cond)


def _user_code(node: Statement) -> str:
    """Names the user code a statement runs while a thread moves, for error messages."""
    match node:
        case For():
            return f"the condition of loop {node.name!r}"
        case Go():
            return f"the id of Go {node.name!r}"
        case If():
            return "a condition of an If"
        case Switch():
            return "a condition of a Switch"
        case _:
            return f"{type(node).__name__}"


_POSITION_KINDS = (Step, Wait, WaitFor, Sleep, For, Go)
_EVENT_KINDS = (On, Sleep)
_index_cache: dict[Any, _Index] = {}


def _build_index(root: Section) -> _Index:
    problems = definition_problems(root)
    if problems:
        raise DefinitionError(problems)
    names: dict[str, Path] = {}
    events: dict[str, Path] = {}
    stack: list[tuple[Statement, Path]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _POSITION_KINDS):
            names[node.name] = path
        if isinstance(node, _EVENT_KINDS):
            events[node.event] = path
        for i, child in enumerate(children(node)):
            stack.append((child, (*path, i)))
    return _Index(names, events)


Mode = Literal["enter", "after", "loop"]


class Program:
    """One built definition tree with a name index.

    Args:
        root: what ``definition()`` returned.
        cache_key: the index of a previous tree with this key is reused while it still fits.
        where: prefix for error messages, naming the workflow.
    """

    __slots__ = ("_chains", "_checked", "_events", "_index", "_names", "cache_key", "root", "where")

    def __init__(self, root: Section, cache_key: Any, where: str) -> None:
        if not isinstance(root, Section):
            raise DefinitionError(
                f"{where}: definition() must return a Section (use S(...)), "
                f"got {type(root).__name__}"
            )
        self.root = root
        self.cache_key = cache_key
        self.where = where
        index = _index_cache.get(cache_key)
        if index is None:
            index = _index_cache[cache_key] = _build_index(root)
        self._index = index
        # Per tree (statements are immutable): resolved look-ups by name, the statements from the
        # root down to each resolved path, and mismatch verdicts by the parts of a thread they
        # depend on, so a thousand threads waiting alike cost one check.
        self._names: dict[str, tuple[Path, Statement] | None] = {}
        self._events: dict[str, tuple[Path, On | Sleep] | None] = {}
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
                    nodes.append(children(nodes[-1])[i])
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
                if table == "events":
                    key = node.event if isinstance(node, _EVENT_KINDS) else None
                else:
                    key = node.name if isinstance(node, _POSITION_KINDS) else None
                if key == name:
                    return path, node
            if attempt == 0:
                # The index was built for a tree of another shape: index this one.
                self._index = _index_cache[self.cache_key] = _build_index(self.root)
        return None

    def find(self, name: str) -> tuple[Path, Statement] | None:
        """The statement named ``name`` (a step, wait, condition, sleep, loop or ``Go``)."""
        names = self._names
        if name not in names:
            names[name] = self._resolve("names", name)
        return names[name]

    def find_event(self, event: str) -> tuple[Path, On | Sleep] | None:
        """The ``On`` (or ``Sleep``) that handles ``event``."""
        events = self._events
        if event not in events:
            events[event] = self._resolve("events", event)
        return events[event]

    def handler(self, event: str) -> Any:
        """The handler object of ``event``; `DefinitionMismatch` when no statement has it."""
        found = self.find_event(event)
        if found is None:
            raise DefinitionMismatch(f"{self.where}: the definition has no event {event!r}")
        node = found[1]
        return node.as_wait().events[0].handler if isinstance(node, Sleep) else node.handler

    def wait_of(self, thread: Thread) -> Wait:
        """The ``Wait`` a waiting thread stands at (a ``Sleep`` as its equivalent ``Wait``)."""
        found = self.find(thread.cur_step)
        node = found[1] if found else None
        if isinstance(node, Sleep):
            return node.as_wait()
        if isinstance(node, Wait):
            return node
        raise DefinitionMismatch(f"{self.where}: no wait named {thread.cur_step!r}")

    # -- checking stored state --------------------------------------------------------------------

    def mismatches(self, state: State) -> list[str]:
        """Every live position, thread or event of ``state`` this definition no longer has."""
        problems: list[str] = []
        for thread in state.threads:
            signature = (
                thread.name,
                thread.cur_step,
                thread.status,
                thread.cur_callback,
                *(event.req.name for event in thread.wait_events),
            )
            verdict = self._checked.get(signature)
            if verdict is None:
                verdict = self._checked[signature] = self._thread_mismatches(thread)
            problems.extend(f"thread {thread.id!r}: {problem}" for problem in verdict)
        for event in state.teardowns:
            if self.find_event(event.req.name) is None:
                problems.append(f"event {event.req.name!r} awaiting teardown no longer exists")
        return problems

    def _thread_mismatches(self, thread: Thread) -> list[str]:
        """What ``thread`` stands on that the tree lacks (messages without the thread's id)."""
        root: Path = ()
        if thread.name != MAIN_THREAD:
            go = self.find(thread.name)
            if go is None or not isinstance(go[1], Go):
                return [f"its Go statement {thread.name!r} no longer exists"]
            root = go[0]
        if not thread.cur_step:
            return []
        found = self.find(thread.cur_step)
        if found is None:
            return [f"its position {thread.cur_step!r} no longer exists"]
        path, node = found
        expected: tuple[type, ...] = {
            ThreadStatus.EXECUTING: (Step,),
            ThreadStatus.RESUMING: (Step, Wait, Sleep, WaitFor),
            ThreadStatus.WAITING_EVENT: (Wait, Sleep),
            ThreadStatus.WAITING_CONDITION: (WaitFor,),
        }[thread.status]
        if not isinstance(node, expected):
            return [
                f"{thread.cur_step!r} is now a {type(node).__name__}, "
                f"not a {' or '.join(k.__name__ for k in expected)}"
            ]
        if self._thread_root(path) != root:
            return [f"{thread.cur_step!r} is no longer inside the body of {thread.name!r}"]
        problems = []
        events = (
            {on.event for on in self.wait_of(thread).events}
            if isinstance(node, Wait | Sleep)
            else set()
        )
        for event in thread.wait_events:
            if event.req.name not in events:
                problems.append(f"event {event.req.name!r} of {thread.cur_step!r} is gone")
        if thread.cur_callback is not None and thread.cur_callback not in events:
            problems.append(
                f"event {thread.cur_callback!r} that fired at {thread.cur_step!r} is gone"
            )
        return problems

    def _thread_root(self, path: Path) -> Path:
        """The path of the innermost ``Go`` around ``path`` (``()`` for the main thread)."""
        chain = self._chain(path)  # chain[k] is the statement at path[:k]
        for depth in range(len(path) - 1, 0, -1):
            if isinstance(chain[depth], Go):
                return path[:depth]
        return ()

    # -- moving -----------------------------------------------------------------------------------

    def _chain(self, path: Path) -> list[Statement]:
        """The statements from the root down to the one at ``path`` (both included)."""
        chain = self._walk_path(path)
        assert chain is not None, path
        return list(chain)

    def advance(self, thread: Thread, threads: list[Thread]) -> Move:
        """Compute ``thread``'s next move from where it stands. Changes nothing.

        The walk keeps the path from the root and the statements along it, so entering a child
        or climbing to the parent costs O(1).

        Raises:
            ExecutionError: a lazy condition or ``Go`` id raised.
            DefinitionError: an iteration reached no step or wait, or a ``Go`` id is taken.
        """
        body_depth = 0
        go_path: Path = ()
        if thread.name != MAIN_THREAD:
            found_go = self.find(thread.name)
            assert found_go is not None
            go_path = found_go[0]
            body_depth = len(go_path) + 1
        mode: Mode
        if not thread.cur_step:
            path = [*go_path, 0] if body_depth else []
            chain = self._chain(tuple(path))
            mode = "enter"
        else:
            found = self.find(thread.cur_step)
            assert found is not None
            path = list(found[0])
            chain = self._chain(found[0])
            here = chain[-1]
            mode = "after"
            if thread.cur_callback is not None and isinstance(here, Wait):
                index = next(
                    i for i, on in enumerate(here.events) if on.event == thread.cur_callback
                )
                path += [index, 0]
                chain += [here.events[index], here.events[index].body]
                mode = "enter"
        try:
            return self._walk(thread, threads, path, chain, mode, body_depth)
        except (DefinitionError, ExecutionError):
            raise
        except Exception as exc:
            raise ExecutionError(
                f"{self._who(thread)}: {_user_code(chain[-1])} raised {exc!r}"
            ) from exc

    def _who(self, thread: Thread) -> str:
        return f"{self.where}, thread {thread.id!r}"

    def _walk(
        self,
        thread: Thread,
        threads: list[Thread],
        path: list[int],
        chain: list[Statement],
        mode: Mode,
        body_depth: int,
    ) -> Move:
        """Move from ``path`` (in ``mode``) to the next resting statement; see `advance`."""
        spawns: list[Spawn] = []
        taken: set[str] | None = None
        iterating: list[Path] = []  # the loops whose body this move entered
        while True:
            if mode == "after":
                # Climb to the next statement of a section, to a loop, or out of the body.
                if len(path) <= body_depth:
                    return _ENDED, spawns
                index = path.pop() + 1
                chain.pop()
                parent = chain[-1]
                if isinstance(parent, Section):
                    if index < len(parent.body):
                        path.append(index)
                        chain.append(parent.body[index])
                        mode = "enter"
                elif isinstance(parent, For):
                    mode = "loop"
                continue
            node = chain[-1]
            if mode == "loop":
                assert isinstance(node, For)
                key = tuple(path)
                if key in iterating:
                    raise DefinitionError(
                        f"{self._who(thread)}: an iteration of loop {node.name!r} "
                        "reached no step or wait"
                    )
                if truth(node.cond):
                    iterating.append(key)
                    path.append(0)
                    chain.append(node.body)
                    mode = "enter"
                else:
                    mode = "after"
                continue
            match node:
                case Section():
                    if node.body:
                        path.append(0)
                        chain.append(node.body[0])
                    else:
                        mode = "after"
                case Step() | Wait() | WaitFor():
                    return node, spawns
                case Sleep():
                    return node.as_wait(), spawns
                case If():
                    branch = self._choose_branch(node)
                    if branch is None:
                        mode = "after"
                    else:
                        path.append(branch)
                        chain.append(children(node)[branch])
                case Switch():
                    case_index = self._choose_case(node)
                    if case_index is None:
                        mode = "after"
                    else:
                        path += [case_index, 0]
                        chain += [node.cases[case_index], node.cases[case_index].body]
                case For():
                    mode = "loop"
                case Break() | Continue():
                    depth = self._enclosing_loop(chain, body_depth)
                    del path[depth:]
                    del chain[depth + 1 :]
                    mode = "after" if isinstance(node, Break) else "loop"
                case Return():
                    return _RETURNED, spawns
                case Go():
                    thread_id = self._go_id(node)
                    if taken is None:
                        taken = {t.id for t in threads}
                    if thread_id in taken:
                        raise DefinitionError(
                            f"{self._who(thread)}: Go {node.name!r} would start thread "
                            f"{thread_id!r}, "
                            f"but a thread with that id is still alive"
                        )
                    taken.add(thread_id)
                    spawns.append((node, thread_id))
                    mode = "after"
                case Case() | Default() | On():
                    raise DefinitionError(
                        f"{self._who(thread)}: cannot run {node!r} at {tuple(path)}"
                    )
                case _:
                    assert_never(node)

    @staticmethod
    def _choose_branch(node: If) -> int | None:
        """The index of the branch to take (``len(branches)`` for ``Else``), or None."""
        for i, branch in enumerate(node.branches):
            if truth(branch.cond):
                return i
        return len(node.branches) if node.else_body is not None else None

    @staticmethod
    def _choose_case(node: Switch) -> int | None:
        """The index of the first true ``Case``, else of the ``Default``, or None."""
        default = None
        for i, case in enumerate(node.cases):
            if isinstance(case, Default):
                default = default if default is not None else i
            elif truth(case.cond):
                return i
        return default

    @staticmethod
    def _enclosing_loop(chain: list[Statement], body_depth: int) -> int:
        """The depth of the innermost ``For`` on ``chain`` within the thread's body."""
        for depth in range(len(chain) - 2, body_depth - 1, -1):
            if isinstance(chain[depth], For):
                return depth
        raise DefinitionError("Break or Continue outside a For")

    @staticmethod
    def _go_id(node: Go) -> str:
        value: Any = node.id() if callable(node.id) else node.id
        if value is None:
            return node.name
        if not isinstance(value, str) or not value:
            raise ExecutionError(f"Go {node.name!r} needs a non-empty string id, got {value!r}")
        return value

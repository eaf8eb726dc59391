"""The cursor a thread moves with: one walk through the tree, steered by the kinds' rules.

`stmtflow.core._program.Program` starts a `_Cursor` where a thread stands and asks it to `move`;
each statement's kind (`stmtflow.dsl._kind.Kind.enter`, ``after`` and ``resume``) steers it
through the `stmtflow.dsl._kind.Cursor` calls it answers (go `into` a child, climb to a loop,
spawn a thread, join a group). What it gathered becomes the `stmtflow.core._move.Move`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stmtflow.core._move import KEEP_AS_IS, Counts, Outcome, Path, Scope, Spawn
from stmtflow.dsl._kind import ENDED, rules
from stmtflow.errors import DefinitionError
from stmtflow.state import Frame, Thread

if TYPE_CHECKING:
    from stmtflow.core._program import Program

__all__ = ["_Cursor"]


class _Cursor:
    """One thread's walk through the tree during one move; the kinds' rules steer it.

    It keeps the path from the root and the statements along it, so entering a child or climbing
    to the parent costs O(1). See `stmtflow.dsl._kind.Cursor` for what the rules may ask.
    """

    __slots__ = (
        "body_depth",
        "chain",
        "closes",
        "compensations",
        "counts",
        "entering",
        "frames",
        "keeping",
        "path",
        "pc",
        "spawns",
        "taken",
        "thread",
        "threads",
        "visited",
        "where",
    )

    def __init__(
        self,
        program: Program,
        thread: Thread,
        threads: list[Thread],
        path: Path,
        body_depth: int,
        counts: Counts,
        pc: int = 0,
        *,
        entering: bool = False,
    ) -> None:
        self.thread = thread
        self.pc = pc
        self.frames: list[Frame] | None = None
        """The thread's frames, copied once a ``Try`` is entered or left."""
        self.compensations: list[int] = []
        self.counts = counts
        self.closes: list[tuple[str, bool]] = []
        self.keeping: Any = KEEP_AS_IS
        self.threads = threads
        self.path = list(path)
        self.chain = program._chain(path)
        self.body_depth = body_depth
        self.entering = entering
        self.spawns: list[Spawn] = []
        self.taken: set[str] | None = None
        self.visited: list[Path] = []
        self.where = program.where

    def move(self) -> Outcome:
        """Walk to the next resting statement, or the end of the thread's body.

        Each statement's kind is asked in turn; one that goes `into` no child is done, and the
        walk climbs to its parent.
        """
        path, chain = self.path, self.chain
        if not self.entering:  # the thread moves on from where it stands
            here = chain[-1]
            outcome = rules(here).resume(here, self.thread, self)
            if outcome is not None:
                return outcome  # type: ignore[no-any-return]
        while True:
            if self.entering:
                self.entering = False
                node = chain[-1]
                outcome = rules(node).enter(node, self)
            else:
                if len(path) <= self.body_depth:
                    return ENDED
                index = path.pop()
                chain.pop()
                node = chain[-1]
                outcome = rules(node).after(node, index, self)
            if outcome is not None:
                return outcome  # type: ignore[no-any-return]

    # -- what the rules ask (stmtflow.dsl._kind.Cursor) -------------------------------------------

    def into(self, index: int, child: Any) -> None:
        self.path.append(index)
        self.chain.append(child)
        self.entering = True

    def first_visit(self) -> bool:
        here = tuple(self.path)
        if here in self.visited:
            return False
        self.visited.append(here)
        return True

    def unwind_to_loop(self) -> Any:
        chain = self.chain
        for depth in range(len(chain) - 2, self.body_depth - 1, -1):
            kind = rules(chain[depth])
            if kind.loops:
                del self.path[depth:]
                del chain[depth + 1 :]
                return chain[-1]
            if kind.guards:
                self.leave_try()
        raise self.fail("Break or Continue outside a For")

    def _frames(self) -> list[Frame]:
        frames = self.frames
        if frames is None:
            frames = self.frames = list(self.thread.frames)
        return frames

    def enter_try(self) -> None:
        self._frames().append(Frame(pc=self.pc))

    def leave_try(self) -> None:
        frames = self._frames()
        if frames:
            frames.pop()

    def compensate(self) -> None:
        for frame in reversed(self._frames()):
            if frame.error is not None:
                self.compensations.append(frame.pc)
                return
        raise self.fail("Compensate outside a Catch body")

    def scope(self) -> Scope | None:
        """What the move did to the thread's frames and which compensations it asked for."""
        if self.frames is None and not self.compensations:
            return None
        return Scope(tuple(self._frames()), tuple(self.compensations))

    def spawn(self, go: Any, thread_id: str, *, arg: Any = None, group: str | None = None) -> None:
        taken = self.taken
        if taken is None:
            taken = self.taken = {t.id for t in self.threads}
        if thread_id in taken:
            raise self.fail(
                f"Go {go.name!r} would start thread {thread_id!r}, "
                "but a thread with that id is still alive"
            )
        taken.add(thread_id)
        self.spawns.append(Spawn(go, thread_id, arg, group))

    def group_count(self, group: str) -> tuple[int, int]:
        alive, ended = self.counts(group)
        for spawn in self.spawns:
            if spawn.group == group:
                alive += 1
        for closed, end_rest in self.closes:
            if closed == group:  # joined earlier in this move: counted afresh
                ended = 0
                if end_rest:
                    alive = sum(1 for spawn in self.spawns if spawn.group == group)
        return alive, ended

    def close_group(self, group: str, *, end_rest: bool) -> None:
        if end_rest:  # threads this very move would start in the group do not start
            self.spawns = [spawn for spawn in self.spawns if spawn.group != group]
        self.closes.append((group, end_rest))

    def keep(self, progress: Any) -> None:
        self.keeping = progress

    @property
    def who(self) -> str:
        """The workflow and thread, for messages."""
        return f"{self.where}, thread {self.thread.id!r}"

    def fail(self, message: str) -> Exception:
        return DefinitionError(f"{self.who}: {message}")

"""How threads start and end: the one place each happens, and thread groups.

`ThreadLife.start_thread` creates every thread a move spawns (a ``Go``, a ``ForEach`` item);
`ThreadLife.end_thread` ends a thread from outside (a ``Join`` ending the rest of its group),
tearing down what it had armed. A thread that reaches the end of its body leaves through
`ThreadLife._remove`, as every ended thread does, which counts it in its group for ``Join``.
The interpreter (`stmtflow.core._interpreter`) is a `ThreadLife`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stmtflow.core._effects import has
from stmtflow.core._move import Spawn
from stmtflow.state import Thread, ThreadStatus, WaitEvent, WaitEventStatus

if TYPE_CHECKING:
    from stmtflow.core._bodies import Bodies, Chain
    from stmtflow.core._program import Program
    from stmtflow.core._thread_index import ThreadIndex
    from stmtflow.state import State

__all__ = ["ThreadLife"]

_TEARDOWN_DUE = (WaitEventStatus.SETUP, WaitEventStatus.TEARDOWN_ERROR)


class ThreadLife:
    """Starting and ending threads, for the interpreter (which provides what is declared)."""

    state: State
    _ended_outside: bool

    # Provided by the interpreter:

    @property
    def index(self) -> ThreadIndex:
        """The state's threads, filed (`stmtflow.core._thread_index`)."""
        raise NotImplementedError

    @property
    def bodies(self) -> Bodies:
        """The programs threads move through (`stmtflow.core._bodies`)."""
        raise NotImplementedError

    def program_of(self, thread: Thread) -> Program:
        """The program ``thread`` moves through."""
        raise NotImplementedError

    def _counts(self, group: str) -> tuple[int, int]:
        """A group's live threads, and its threads ended since its last ``Join``."""
        return self.index.alive(group), self.state.groups.get(group, 0)

    def start_thread(self, spawn: Spawn, pc: int, within: Chain = ()) -> Thread:
        """Start the thread a move spawns (a ``Go``, a ``ForEach`` item): the one place a thread
        is created. It is appended after every other thread (creation order), runnable, with
        its arg and group, its first move still to come; ``pc`` is the spawning move's,
        ``within`` the bodies built from args its ``Go`` stands in (`Thread.within`)."""
        thread = Thread(
            id=spawn.thread_id,
            name=spawn.go.name,
            status=ThreadStatus.RESUMING,
            pc=pc,
            arg=spawn.arg,
            group=spawn.group,
            within=within or None,
        )
        self.state.threads.append(thread)
        self.index.add(thread)
        return thread

    def _remove(self, thread: Thread) -> None:
        """``thread`` ended: out of the state and the index, counted in its group."""
        state = self.state
        # By identity: `list.remove` would compare the threads before it field by field.
        del state.threads[next(i for i, t in enumerate(state.threads) if t is thread)]
        self.index.remove(thread)
        group = thread.group
        if group is not None:
            state.groups[group] = state.groups.get(group, 0) + 1

    def end_thread(self, thread: Thread) -> None:
        """End ``thread`` from outside (a ``Join`` ending the rest of its group).

        Its armed events become due for teardown (``teardown(req, handled=False)``, which is
        how a timer is cancelled and, for a child-workflow handler, its child), the threads of
        a ``ForEach`` it stands at are ended the same way first, and it leaves the state (counted
        as ended in its group). Its progress counts as the move that ended it: the caller
        checkpoints. The teardowns run right after that checkpoint.
        """
        progress = thread.foreach
        if progress is not None:
            self._close_group(progress.group, True, thread)
        self._queue_teardowns(thread)
        self._remove(thread)
        self._ended_outside = True

    def _close_group(self, group: str, end_rest: bool, joiner: Thread) -> None:
        """A ``Join`` (or a ``ForEach`` all of whose items ran) joined ``group``: with
        ``end_rest``, end its live threads (never the ``joiner`` itself); then forget its ended
        threads."""
        if end_rest and self.index.alive(group):
            for other in [t for t in self.state.threads if t.group == group and t is not joiner]:
                self.end_thread(other)
        self.state.groups.pop(group, None)

    def _queue_teardowns(self, thread: Thread, fired: WaitEvent | None = None) -> None:
        """``thread``'s wait is over: its armed events whose handler has a teardown become due
        (``fired``, the event that arrived, with ``handled=True``)."""
        events = thread.wait_events
        if not events:
            return
        place = self.bodies.place(thread)
        program = place.program
        for event in events:
            if event.status in _TEARDOWN_DUE and has(program.handler(event.req.name), "teardown"):
                update: dict[str, Any] = {
                    "status": WaitEventStatus.PENDING_TEARDOWN,
                    "handled": event is fired,
                }
                if place.chain:
                    update["body_of"] = place.chain
                self.state.teardowns.append(event.model_copy(update=update))

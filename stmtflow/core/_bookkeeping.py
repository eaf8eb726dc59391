"""What one interpreter run keeps: the definition, the thread index, the pc and the status.

The base of the interpreter's classes (`stmtflow.core._interpreter.Interpreter` is a
`Failures`, a `Waits` and this `Bookkeeping`, each in a module of its own): the definition
(rebuilt after each action unless the class is static), the programs the threads move
through, the thread index kept in step with every change, the check of a stored state against
the definition, and the small updates every rule makes (the ``pc``, the workflow's status,
the notes for the history, ending every thread).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stmtflow.core._bodies import Bodies
from stmtflow.core._effects import describe
from stmtflow.core._notes import Note
from stmtflow.core._program import Program
from stmtflow.core._thread_index import ThreadIndex, can_move
from stmtflow.core._threads import ThreadLife
from stmtflow.dsl._statements import RetryPolicy, Step
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import DefinitionMismatch, ExecutionError
from stmtflow.state import MAIN_THREAD, TERMINAL_STATUSES, State, Thread, WaitEvent, WorkflowStatus

__all__ = ["Bookkeeping"]

# The member `_running` reads on every step, as a module constant (why: `_interpreter`).
_RUNNING = WorkflowStatus.RESUMING


class Bookkeeping(ThreadLife):
    """One run over a workflow's data and state: what the rules of the interpreter share.

    How threads start and end (`ThreadLife.start_thread`, `ThreadLife.end_thread`) is
    `stmtflow.core._threads`'.
    """

    def __init__(
        self,
        wf: WorkflowState,
        state: State,
        now: datetime,
        default_retry: RetryPolicy | None = None,
        *,
        checked: bool = False,
        index: ThreadIndex | None = None,
    ) -> None:
        if not isinstance(wf, WorkflowState):
            raise TypeError(f"expected a WorkflowState instance, got {type(wf).__name__}")
        if not isinstance(state, State):
            raise TypeError(f"expected a State, got {type(state).__name__}")
        self.wf = wf
        self.state = state
        self.now = now
        self.default_retry = default_retry
        self.where = f"workflow {state.id!r} ({state.workflow})"
        self._program: Program | None = None
        self._bodies: Bodies | None = None
        self._ended_outside = False
        """A thread was ended by another's move: its events' teardowns are due at once."""
        self._static = bool(type(wf).static_definition)
        self._stale = False
        self._checked = checked
        """True once `state` is known to fit the definition; a caller passes ``checked=True``
        only for a state an interpreter of this very class left (the engine's reused state)."""
        self._index = index
        """Given only with a state an interpreter left along with this very index, untouched
        since (the engine's reused state); else built from the state on first use."""
        self.notes: list[Note] | None = None
        """Where the facts of the history are noted (`stmtflow.core._notes`); None: not kept."""

    # -- the definition ---------------------------------------------------------------------------

    @property
    def program(self) -> Program:
        """The current definition: rebuilt after each action unless the class is static."""
        program = self._program
        if program is None or self._stale:
            # Let go of the stale tree first: two trees are never alive at once, and freeing
            # the old one is paid where the user's rebuild is, not inside the library's step.
            self._program = program = None
            try:
                root = self.wf.definition()
            except Exception as exc:
                raise ExecutionError(f"{self.where}: definition() raised {describe(exc)}") from exc
            program = self._program = Program(root, type(self.wf), self.where)
            self._stale = False
        return program

    @property
    def bodies(self) -> Bodies:
        """The programs the threads move through (a thread's own body when built from its
        arg), for the current definition."""
        program = self.program
        bodies = self._bodies
        if bodies is None or bodies.root is not program:
            bodies = self._bodies = Bodies(program, type(self.wf))
        return bodies

    def program_of(self, thread: Thread) -> Program:
        """The program ``thread`` moves through: the definition, or its body built from its arg
        (`stmtflow.core._bodies`)."""
        if thread.name == MAIN_THREAD:
            return self.program
        return self.bodies.of(thread)

    @property
    def index(self) -> ThreadIndex:
        """The state's threads filed by what the scans look for; this interpreter keeps it in
        step with every change it makes to a thread."""
        index = self._index
        if index is None:
            index = self._index = ThreadIndex(self.state.threads)
        return index

    def state_changed(self) -> None:
        """The state's threads were changed from outside (a restart): file them afresh."""
        self._index = None

    def _replace_event(self, thread: Thread, event: WaitEvent, **changes: Any) -> None:
        """Put a copy of ``event`` with ``changes`` in its place among ``thread``'s events (events
        are frozen values), and file the thread again."""
        changed = event.model_copy(update=changes)
        thread.wait_events = tuple(changed if e is event else e for e in thread.wait_events)
        self.index.update(thread)

    def _forget_failures(self, thread: Thread) -> None:
        """``thread`` is done with its step, or reached a new one: no failed attempts remain.

        (``restart`` gives a fresh attempt count but keeps the failure: it is cleared here too.)
        """
        if thread.attempt or thread.retry_at is not None or thread.last_error is not None:
            thread.attempt = 0
            thread.retry_at = None
            thread.last_error = None
            self.index.update(thread)  # no longer among the threads whose step failed

    def _changed_data(self) -> None:
        """User code ran and may have changed what the definition's shape and conditions read."""
        self._stale = not self._static

    def check(self) -> Program:
        """Refuse to run anything when stored positions no longer fit the definition (§3.8).

        Checked once per interpreter: a callback and the resume after it check once.
        """
        program = self.program
        if self._checked:
            return program
        bodies = self.bodies
        problems = program.mismatches(self.state, lambda t: bodies.place(t)[:2])
        if problems:
            raise DefinitionMismatch(
                f"{self.where}: the stored state does not fit the definition: "
                + "; ".join(problems)
            )
        self._checked = True
        return program

    def _step_at(self, thread: Thread) -> Step:
        found = self.program_of(thread).find(thread.cur_step)
        assert found is not None and isinstance(found[1], Step)
        return found[1]

    # -- bookkeeping ------------------------------------------------------------------------------

    def _progress(self, thread: Thread | None = None) -> None:
        pc = self.state.pc + 1
        self.state.pc = pc
        if thread is not None:
            thread.pc = pc

    def _refresh_status(self, moved: Thread | None = None) -> None:
        """Set ``resuming`` while some thread can move, else ``waiting`` (ended stays ended).

        ``moved`` is the thread that just made progress: when it can move on, no scan is needed.
        """
        state = self.state
        if state.status in TERMINAL_STATUSES:
            return
        if state.unwinding:
            state.status = WorkflowStatus.COMPENSATING
            return
        running = (moved is not None and can_move(moved, self.now)) or (
            self._next_runnable() is not None
        )
        status = WorkflowStatus.RESUMING if running else WorkflowStatus.WAITING
        if state.status is not status:
            state.status = status

    def _running(self) -> None:
        """A thread moves on: the workflow is ``resuming`` (it may have been ``waiting``)."""
        if self.state.status is not _RUNNING:
            self.state.status = _RUNNING

    def _next_runnable(self) -> Thread | None:
        """The first thread, in creation order, that can move now."""
        return self.index.next_runnable(self.now)

    def _who(self, thread: Thread) -> str:
        return f"{self.where}, thread {thread.id!r}"

    def _note(
        self,
        kind: str,
        thread: Thread | None,
        name: str | None,
        attempt: int | None = None,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Note a fact for the history, if one is kept (`Interpreter.notes`)."""
        if self.notes is not None:
            thread_id = None if thread is None else thread.id
            self.notes.append(Note(kind, thread_id, name, attempt, error, detail))

    def _end_all(self, status: WorkflowStatus, keep: Thread | None = None) -> None:
        """End every live thread but ``keep``; their armed events become due for teardown.

        ``keep`` is a thread that failed for good, kept where it failed for all to see.
        """
        for other in self.state.threads:
            self._queue_teardowns(other)
        self.state.threads.clear()
        self.state.groups.clear()
        self.index.clear()
        if keep is not None:
            self.state.threads.append(keep)
            self.index.add(keep)
        self.state.status = status
        if status is WorkflowStatus.FINISHED:
            self.state.saga.clear()  # nothing it did will be undone now

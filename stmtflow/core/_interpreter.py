"""The interpreter: one sans-I/O engine behind ``resume`` and ``handle_callback``.

The engine is a generator. It decides what happens next and *yields* each call it needs — run
this action, call this handler, checkpoint now — as an `Effect` (`stmtflow.core._effects`); a
driver performs the call and sends back the result (or throws the exception in).
`stmtflow.core._drivers` holds the two thin drivers, one plain and one awaiting, so sync and
async share every rule below. Which thread a delivered event is for is `stmtflow.core._routing`'s.

Scheduling (DESIGN §3.1): the first runnable thread in creation order moves; when none can,
``WaitFor`` conditions are checked in thread order and the first true one wakes its thread.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime
from typing import Any, assert_never

from stmtflow.core import _escalation as escalation
from stmtflow.core._bodies import Bodies, Chain
from stmtflow.core._effects import (
    Call,
    CancelChild,
    Data,
    Effect,
    Run,
    describe,
    has,
    is_local,
    start_child,
    started_child,
    take_lock,
)
from stmtflow.core._notes import Note
from stmtflow.core._program import KEEP_AS_IS, Ended, Move, Program
from stmtflow.core._routing import route
from stmtflow.core._saga import take_since, unwind, unwind_all
from stmtflow.core._thread_index import ThreadIndex, can_move
from stmtflow.core._threads import ThreadLife
from stmtflow.dsl._child import Child, Start
from stmtflow.dsl._escalation import ESCALATION
from stmtflow.dsl._handlers import Timer, handler_type
from stmtflow.dsl._kind import rules, truth
from stmtflow.dsl._lock import LockGrant
from stmtflow.dsl._statements import ForEach, Join, RetryPolicy, Step, Wait, WaitFor
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import (
    CallbackInputError,
    DefinitionMismatch,
    ExecutionError,
    HandlerError,
    StepError,
    StepLimitExceeded,
    UnknownCallback,
    WorkflowFinished,
)
from stmtflow.state import (
    MAIN_THREAD,
    TERMINAL_STATUSES,
    CallbackRequest,
    CaughtError,
    CheckpointType,
    SagaEntry,
    State,
    Thread,
    ThreadStatus,
    WaitEvent,
    WaitEventStatus,
    WorkflowStatus,
)

__all__ = ["Call", "Effect", "Interpreter", "Run"]

_TEARDOWN_DUE = (WaitEventStatus.SETUP, WaitEventStatus.TEARDOWN_ERROR)

# The enum members every step reads, as module constants. On Python 3.11 reading a member off
# its enum class costs some 55 ns more than reading a global (on 3.12 and 3.13 about 10 ns), and
# a step reads eight: 7-10 % of W1(a) on 3.11 (docs/performance.md, "Reshape"). Drop these when
# 3.11 support goes; everywhere else the members are named where they are used.
_EXECUTING, _RESUMING = ThreadStatus.EXECUTING, ThreadStatus.RESUMING
_RUNNING = WorkflowStatus.RESUMING
_AFTER_STEP, _AFTER_RESUME = CheckpointType.AFTER_STEP, CheckpointType.AFTER_RESUME


class Interpreter(ThreadLife):
    """One run over a workflow's data and state; the drivers perform what it yields.

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

    # -- resume -----------------------------------------------------------------------------------

    def resume(self, max_steps: int) -> Run:
        """Run every runnable thread until all are blocked or the workflow ends.

        Plain methods apply each unit of progress; this loop yields the call or checkpoint each
        one leads to itself, so the common units cost no generator of their own.
        """
        self.check()
        yield from self._teardowns()
        state = self.state
        if state.status in TERMINAL_STATUSES:
            return state
        yield from self._retry_setups()
        actions = 0
        while state.status not in TERMINAL_STATUSES:
            if state.unwinding:  # compensations run before any thread moves on
                ran = yield from unwind(self)
                if ran is None:
                    break
                actions += ran
                if state.status in TERMINAL_STATUSES:
                    yield from self._teardowns(retry=False)
                else:
                    yield from self._retry_setups()  # waits armed meanwhile (after Compensate())
                continue
            thread = self._next_runnable()
            if thread is None:
                woke = yield from self._conditions(max_steps - actions)
                if woke is None:
                    break
                actions += woke
                continue
            # The first runnable thread moves until it blocks or ends (§3.1). Only its own moves
            # change statuses meanwhile, so the threads before it stay blocked: no rescan.
            can_move = True
            while can_move:
                if thread.status is not _EXECUTING:
                    can_move = self._move(thread)
                    yield _AFTER_RESUME
                    if self._ended_outside:
                        self._ended_outside = False
                        yield from self._teardowns(retry=False)
                    if not can_move:
                        yield from self._came_to_rest(thread)
                    continue
                if actions >= max_steps:
                    raise StepLimitExceeded(
                        f"{self.where}: ran {max_steps} actions in one resume "
                        f"(next: step {thread.cur_step!r} on thread {thread.id!r}); "
                        "a loop may never block — raise max_steps if this is intended"
                    )
                actions += 1
                step = self._step_at(thread)
                snapshot = Data.snapshot(self.wf, self.where)
                call = self._step_call(thread, step, snapshot)
                if call.start is not None:  # a Start: its child first, its id to the call
                    call.args = ((yield call.start),)
                try:
                    yield call
                except Exception as exc:
                    Data.restore(self.wf, snapshot)
                    can_move = yield from self._step_failed(thread, step, exc)
                    continue
                self._step_done(thread, step)
                yield _AFTER_STEP
        return state

    def _step_at(self, thread: Thread) -> Step:
        found = self.program_of(thread).find(thread.cur_step)
        assert found is not None and isinstance(found[1], Step)
        return found[1]

    def _step_call(self, thread: Thread, step: Step, snapshot: bytes) -> Call:
        """The call of the action of ``step``, where ``thread`` stands (``snapshot``: the data)."""
        key = (self.state.id, thread.id, step.name, thread.attempt + 1, thread.step_pc)
        error = None
        if thread.frames:  # inside a Try: in a catch body, current_error() says what it took
            error = next((f.error for f in reversed(thread.frames) if f.error), None)
        call = Call(step.action, (), self.where, key, data=snapshot, error=error)
        if type(step) is Start:
            what = f"Start {step.name!r} ({self._who(thread)})"
            call.start = started_child(step, self.state.id, thread.step_pc, what)
        return call

    def _step_done(self, thread: Thread, step: Step) -> None:
        """The step's action returned: the thread moves on from it next."""
        self._changed_data()
        state = self.state
        if self.notes is not None:
            self.notes.append(Note("step_completed", thread.id, step.name, thread.attempt + 1))
        if step.compensate is not None:
            # In a body built from an arg, the chain that builds it is kept with the entry: the
            # compensation is found in that body after the thread ended.
            chain = self.bodies.place(thread).chain if thread.name != MAIN_THREAD else None
            chain = chain or None
            entry = SagaEntry(step=step.name, thread=thread.id, pc=thread.step_pc, body_of=chain)
            state.saga.append(entry)
        pc = state.pc + 1
        thread.pc = pc
        thread.status = _RESUMING  # executing to resuming: filed the same
        self._forget_failures(thread)
        state.pc = pc
        self._running()  # no step runs once the workflow ended, and this thread can move on

    def _step_failed(
        self, thread: Thread, step: Step, exc: Exception
    ) -> Generator[Effect, Any, bool]:
        """Record a failed attempt under the step's retry policy, or raise `StepError`; a final
        failure goes to `_final_failure`.

        A step without a policy of its own inside a ``Try`` that takes the error has one attempt
        (the default policy is not used): its failure is final at once.

        Returns whether the thread can go on at once (a retry already due, or caught at a step).
        """
        policy = step.retry
        attempt = thread.attempt + 1
        if policy is None and thread.frames and self._catchable(thread, exc):
            return (yield from self._final_failure(thread, step, exc, attempt))
        policy = policy or self.default_retry
        if policy is None:
            what = f"step {step.name!r} ({self._who(thread)})"
            raise StepError(f"{what} failed: {describe(exc)}", step=step.name) from exc
        if attempt >= policy.max_attempts or not policy.is_retryable(exc):
            if policy.on_exhausted == "escalate":  # an operator decides first (DESIGN §7)
                self._progress(thread)
                thread.attempt = attempt
                thread.last_error = describe(exc)
                self._note("step_failed", thread, step.name, attempt, thread.last_error)
                escalation.escalate(thread, self.state.id, self.now)
                self.index.update(thread)
                self._refresh_status(thread)
                yield CheckpointType.AFTER_STEP
                return False
            return (yield from self._final_failure(thread, step, exc, attempt))
        self._progress(thread)
        thread.attempt = attempt
        thread.last_error = describe(exc)
        thread.retry_at = self.now + policy.interval(attempt)
        if self.notes is not None:
            detail = {"retry_at": thread.retry_at.isoformat()}
            self._note("retry_scheduled", thread, step.name, attempt, thread.last_error, detail)
        self.index.update(thread)
        self._refresh_status(thread)
        yield CheckpointType.AFTER_STEP
        return can_move(thread, self.now)

    def _catchable(self, thread: Thread, exc: Exception) -> bool:
        """Whether a ``Try`` around ``thread``'s step takes ``exc``."""
        place = self.bodies.place(thread)
        return place.program.catcher(thread, exc, place.rooted) is not None

    def _final_failure(
        self, thread: Thread, step: Step, exc: Exception, attempt: int
    ) -> Generator[Effect, Any, bool]:
        """``step`` failed for good on ``thread`` (`_fail_for_good`), then the checkpoint and
        what the thread's new place needs (a catch's wait armed, teardowns of ended threads).
        Returns whether the thread can go on at once."""
        caught, can_go = self._fail_for_good(thread, step, exc, attempt)
        yield CheckpointType.AFTER_STEP
        state = self.state
        if caught:
            if not can_go:
                yield from self._came_to_rest(thread)
            return can_go and state.status not in TERMINAL_STATUSES
        if state.status is WorkflowStatus.COMPENSATING:
            yield from self._teardowns(retry=False)
        return False

    def _fail_for_good(
        self,
        thread: Thread,
        step: Step,
        exc: Exception,
        attempt: int,
        error: str | None = None,
    ) -> tuple[bool, bool]:
        """``step`` failed for good on ``thread`` (its ``attempt``-th attempt): the one place a
        final failure is handled, a step's own or an operator's ``fail`` of an escalation.

        The first ``Try`` around it that takes ``exc`` catches it: the thread moves into that
        catch. Uncaught, the workflow fails with ``error`` (default: one built from ``exc``)
        kept in ``State.error`` and the thread kept on the step; with steps to compensate, it
        first unwinds them (status ``compensating``, every other thread ended).
        Returns whether it was caught, and whether the thread can go on at once.
        """
        state = self.state
        pc = state.pc + 1
        caught = CaughtError(
            type=type(exc).__name__, message=str(exc), step=step.name, attempt=attempt
        )
        place = self.bodies.place(thread)
        counts = self._counts
        move = place.program.catch(thread, state.threads, exc, caught, pc, counts, place.rooted)
        self._note("step_failed", thread, step.name, attempt, describe(exc))
        if move is not None:
            self._note("caught", thread, step.name, attempt, describe(exc))
            state.last_caught = caught
            self._forget_failures(thread)
            thread.wait_events = ()  # an escalation's event, answered
            return True, self._apply(thread, move, pc, place.chain)
        self._progress(thread)
        thread.attempt = attempt
        thread.last_error = describe(exc) if error is None else thread.last_error
        thread.retry_at = None
        what = f"step {step.name!r} ({self._who(thread)})"
        state.error = error or f"{what} failed after {attempt} attempt(s): {describe(exc)}"
        if state.saga:
            self._end_all(WorkflowStatus.COMPENSATING, keep=thread)
            unwind_all(state, WorkflowStatus.FAILED)
        else:
            state.status = WorkflowStatus.FAILED
        self.index.update(thread)
        return False, False

    def _answered(self, thread: Thread, action: str) -> None:
        """An operator answered ``thread``'s escalation (`stmtflow.core._escalation.answer`).

        ``fail`` is the step's final failure, as a `StepError`: a ``Try`` around the step that
        takes it catches it, else the workflow compensates and fails (`_fail_for_good`); what
        the new place needs (a catch's wait armed, compensations, teardowns) the next resume
        does.
        """
        self._progress(thread)
        fails = escalation.answer(thread, action)
        self.index.update(thread)
        if not fails:
            self.state.status = WorkflowStatus.RESUMING
            return
        step = self._step_at(thread)
        error = escalation.failure(thread, self._who(thread))
        exc = StepError(error, step=step.name)
        caught, _ = self._fail_for_good(thread, step, exc, thread.attempt, error)
        if caught and self.state.status not in TERMINAL_STATUSES:
            self._refresh_status()

    def _move(self, thread: Thread) -> bool:
        """Move ``thread`` to its next resting place; True when it can go on at once (a step)."""
        state = self.state
        place = self.bodies.place(thread)
        pc = state.pc + 1
        move = place.program.advance(thread, state.threads, self._counts, place.rooted, pc=pc)
        return self._apply(thread, move, pc, place.chain)

    def _apply(self, thread: Thread, move: Move, pc: int, chain: Chain) -> bool:
        """Put ``thread`` where a move (numbered ``pc``) took it, in the body ``chain`` builds;
        True when it can go on at once."""
        state = self.state
        index = self.index
        outcome = move.outcome
        scope = move.scope
        if scope is not None:
            thread.frames = scope.frames
            for since in scope.compensate:
                take_since(state, thread.id, since)
        if thread.cur_callback is not None:
            thread.cur_callback = None
        for group, end_rest in move.closes:
            self._close_group(group, end_rest, thread)
        if move.keep is not KEEP_AS_IS:
            thread.foreach = move.keep
        for spawn in move.spawns:
            self.start_thread(spawn, pc, chain)
        match outcome:
            case Step():
                thread.pc = pc
                thread.cur_step = outcome.name
                thread.status = _EXECUTING  # resuming to executing: filed the same
                thread.step_pc = pc
                self._forget_failures(thread)
                state.pc = pc
                if state.unwinding:  # a Compensate() on the way: those run first
                    state.status = WorkflowStatus.COMPENSATING
                    return False
                self._running()  # it ends only when its main thread does
                return True
            case Wait():
                thread.pc = pc
                thread.cur_step = outcome.name
                thread.status = ThreadStatus.WAITING_EVENT
                thread.wait_events = tuple(
                    WaitEvent(
                        type=handler_type(on.handler),
                        req=CallbackRequest(
                            workflow_id=state.id, thread_id=thread.id, name=on.event, pc=pc
                        ),
                        status=(
                            WaitEventStatus.PENDING_SETUP
                            if has(on.handler, "setup")
                            else WaitEventStatus.SETUP
                        ),
                    )
                    for on in outcome.events
                )
                index.update(thread)
            case WaitFor() | Join() | ForEach():
                thread.pc = pc
                thread.cur_step = outcome.name
                thread.status = ThreadStatus.WAITING_CONDITION
                index.update(thread)
            case Ended():
                self._remove(thread)
                if thread.id == MAIN_THREAD:
                    self._end_all(WorkflowStatus.FINISHED)
            case _:
                assert_never(outcome)
        state.pc = pc
        self._refresh_status()
        return False

    def _came_to_rest(self, thread: Thread) -> Run:
        """After a move that blocked or ended ``thread``: arm its wait's events, or tear down.

        Teardowns are due when the move ended the workflow (and with it every other thread).
        """
        if thread.status is ThreadStatus.WAITING_EVENT:
            if not self.state.unwinding:  # else once the compensations ran
                yield from self._setups(thread)
        elif self.state.status in TERMINAL_STATUSES:
            yield from self._teardowns(retry=False)

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

    # -- conditions -------------------------------------------------------------------------------

    def _conditions(self, budget: int) -> Generator[Effect, Any, int | None]:
        """Wake the first thread whose ``WaitFor`` holds; the number of actions run, or None.

        A wake counts as one action (with or without a handler), so a loop around a condition
        that stays true hits ``max_steps`` instead of spinning forever.
        """
        for thread in self.index.waiting_conditions():
            found = self.program_of(thread).find(thread.cur_step)
            assert found is not None
            wait_for = found[1]
            if not isinstance(wait_for, WaitFor):  # a Join or ForEach: waits on threads
                if not rules(wait_for).ready(wait_for, thread, self._counts):
                    continue
                if budget <= 0:
                    raise StepLimitExceeded(
                        f"{self.where}: the action limit was reached before "
                        f"{rules(wait_for).title(wait_for)} on thread {thread.id!r} could go on"
                    )
                self._progress(thread)
                thread.status = ThreadStatus.RESUMING
                self.index.update(thread)
                self._refresh_status(thread)
                yield CheckpointType.AFTER_CONDITION
                return 1
            try:
                holds = truth(wait_for.cond)
            except Exception as exc:
                raise ExecutionError(
                    f"{self._who(thread)}: the condition of WaitFor {wait_for.name!r} "
                    f"raised {exc!r}"
                ) from exc
            if not holds:
                continue
            if budget <= 0:
                raise StepLimitExceeded(
                    f"{self.where}: the action limit was reached before WaitFor "
                    f"{wait_for.name!r} on thread {thread.id!r} could wake"
                )
            if wait_for.handler is not None:
                snapshot = Data.snapshot(self.wf, self.where)
                what = f"the handler of WaitFor {wait_for.name!r} ({self._who(thread)})"
                # The thread wakes: what is written before the handler runs (the runtime's
                # flush before user code) must say the instance has work now, so a crash in
                # the handler leaves an instance that is resumed, not one left waiting.
                status = self.state.status
                self._running()
                try:
                    yield Call(wait_for.handler, (), what)
                except Exception as exc:
                    Data.restore(self.wf, snapshot)
                    self.state.status = status
                    raise ExecutionError(f"{what} raised {describe(exc)}") from exc
                self._changed_data()
            self._progress(thread)
            thread.status = ThreadStatus.RESUMING
            self.index.update(thread)
            self._refresh_status(thread)
            yield CheckpointType.AFTER_CONDITION
            return 1
        return None

    # -- events: setup and teardown ---------------------------------------------------------------

    def _setups(self, thread: Thread) -> Run:
        """Set up the thread's events that are not yet set up; failures are kept, not raised."""
        wait = self.program_of(thread).wait_of(thread)
        handlers = {on.event: on.handler for on in wait.events}
        for event in thread.wait_events:
            if event.status not in (WaitEventStatus.PENDING_SETUP, WaitEventStatus.SETUP_ERROR):
                continue
            what = f"the setup of event {event.req.name!r} ({self._who(thread)})"
            handler = handlers[event.req.name]
            if isinstance(handler, Child):
                # Not user code: the runtime starts the child with the next checkpoint. What
                # it refuses (an unknown type, an input that does not fit) is raised as is.
                data = yield start_child(handler, event.req, what)
            elif isinstance(handler, LockGrant):
                data = yield take_lock(handler, what)  # the runtime's, like a child
            else:
                try:
                    setup: Any = getattr(handler, "setup", None)  # pending only if it has one
                    local = is_local(handler, "setup")
                    data = yield Call(setup, (event.req,), what, local=local)
                    if data is not None and not isinstance(data, str):
                        raise TypeError(f"setup returned {type(data).__name__}, not a str")
                except Exception as exc:
                    error = f"{what} failed: {describe(exc)}"
                    self._replace_event(
                        thread, event, status=WaitEventStatus.SETUP_ERROR, error=error
                    )
                    continue
            self._replace_event(
                thread,
                event,
                req=event.req.model_copy(update={"setup_data": data or ""}),
                status=WaitEventStatus.SETUP,
                error=None,
            )
            self._progress()
            yield CheckpointType.AFTER_SETUP

    def _retry_setups(self) -> Run:
        for thread in self.index.setups_due():
            yield from self._setups(thread)

    def _teardowns(self, *, retry: bool = True) -> Run:
        """Tear down the events of ended waits; failures are kept and retried next time.

        ``retry=False`` leaves alone those whose teardown already failed (tried once per resume).
        """
        bodies = self.bodies
        for event in list(self.state.teardowns):
            if not retry and event.status is WaitEventStatus.TEARDOWN_ERROR:
                continue
            what = f"the teardown of event {event.req.name!r} ({self.where})"
            try:
                handler = bodies.handler(event)
                if not isinstance(handler, Child):
                    yield Call(handler.teardown, (event.req, event.handled), what)
                elif not event.handled and handler.on_parent_end == "cancel":
                    yield CancelChild(event.req.setup_data, what)
            except Exception as exc:
                teardowns = self.state.teardowns
                teardowns[teardowns.index(event)] = event.model_copy(
                    update={
                        "status": WaitEventStatus.TEARDOWN_ERROR,
                        "error": f"{what} failed: {describe(exc)}",
                    }
                )
                continue
            self.state.teardowns.remove(event)
            self._progress()
            yield CheckpointType.AFTER_TEARDOWN

    # -- callbacks --------------------------------------------------------------------------------

    def callback(self, req: CallbackRequest, input: Any) -> Run:
        """Deliver an event: route it, run ``handle``, record which event fired (§3.5)."""
        state = self.state
        if req.workflow_id and req.workflow_id != state.id:
            raise UnknownCallback(
                f"{self.where}: the callback is addressed to workflow {req.workflow_id!r}"
            )
        if state.status in TERMINAL_STATUSES:
            raise WorkflowFinished(
                f"{self.where} is {state.status.value}; event {req.name!r} cannot be delivered"
            )
        self.check()
        thread, event = route(req, self.state, self.index, self.where)
        handler = self.program_of(thread).handler(event.req.name)
        what = f"the handler of event {req.name!r} ({self._who(thread)})"
        local = is_local(handler)  # cannot touch the data: nothing to roll back
        snapshot = None if local else Data.snapshot(self.wf, self.where)
        try:
            output = yield Call(handler.handle, (event.req, input), what, local=local)
        except CallbackInputError:
            if snapshot is not None:
                Data.restore(self.wf, snapshot)
            raise
        except Exception as exc:
            if snapshot is not None:
                Data.restore(self.wf, snapshot)
            raise HandlerError(f"{what} raised {describe(exc)}") from exc
        if self.notes is not None:
            self._note(_delivered(handler), thread, req.name, detail=_input_detail(input))
        if handler is ESCALATION:
            self._answered(thread, output)
            return output
        if not local:
            self._changed_data()
        self._progress(thread)
        thread.cur_callback = req.name
        thread.status = ThreadStatus.RESUMING
        self._queue_teardowns(thread, fired=event)
        thread.wait_events = ()
        self.index.update(thread)
        state.status = WorkflowStatus.RESUMING
        return output

    # -- cancel -----------------------------------------------------------------------------------

    def cancel(self, *, compensate: bool = False, max_steps: int = 10_000) -> Run:
        """End every thread, tear down their events, and mark the workflow ``cancelled``.

        With ``compensate``, the compensations of the completed steps run first (latest first;
        status ``compensating`` meanwhile), then the workflow is ``cancelled``.
        """
        state = self.state
        if state.status in (WorkflowStatus.FINISHED, WorkflowStatus.CANCELLED):
            raise WorkflowFinished(f"{self.where} is already {state.status.value}")
        self.check()
        if compensate and (state.saga or state.unwinding):
            self._end_all(WorkflowStatus.COMPENSATING)
            unwind_all(state, WorkflowStatus.CANCELLED)
            self._progress()
            yield CheckpointType.AFTER_RESUME
            yield from self._teardowns()
            return (yield from self.resume(max_steps))
        self._end_all(WorkflowStatus.CANCELLED)
        self._progress()
        yield CheckpointType.AFTER_RESUME
        yield from self._teardowns()
        return state


def _delivered(handler: object) -> str:
    """The history kind of an event that fired, by its handler."""
    if isinstance(handler, Child):
        return "child_ended"
    return "timer_fired" if isinstance(handler, Timer) else "event_delivered"


def _input_detail(input: Any) -> dict[str, Any] | None:
    """What the history keeps of an event's input: a child's outcome, else nothing (inputs may
    be large or private; the state keeps what the workflow took of them)."""
    status = getattr(input, "status", None)
    if status is None and isinstance(input, dict):
        status = input.get("status")
    child = getattr(input, "id", None) if status is not None else None
    if child is None and isinstance(input, dict) and status is not None:
        child = input.get("id")
    return None if status is None else {"child": child, "status": status}

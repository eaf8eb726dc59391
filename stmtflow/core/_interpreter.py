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

from typing import Any, assert_never

from stmtflow.core._bodies import Chain
from stmtflow.core._effects import Call, Data, Effect, Run, describe, has, is_local, started_child
from stmtflow.core._failures import Failures
from stmtflow.core._move import KEEP_AS_IS, Move
from stmtflow.core._notes import Note
from stmtflow.core._program import Ended
from stmtflow.core._routing import route
from stmtflow.core._saga import take_since, unwind, unwind_all
from stmtflow.dsl._child import Child, Start
from stmtflow.dsl._escalation import ESCALATION
from stmtflow.dsl._handlers import Timer, handler_type
from stmtflow.dsl._statements import ForEach, Join, Step, Wait, WaitFor
from stmtflow.errors import (
    CallbackInputError,
    HandlerError,
    StepLimitExceeded,
    UnknownCallback,
    WorkflowFinished,
)
from stmtflow.state import (
    MAIN_THREAD,
    TERMINAL_STATUSES,
    CallbackRequest,
    CheckpointType,
    SagaEntry,
    Thread,
    ThreadStatus,
    WaitEvent,
    WaitEventStatus,
    WorkflowStatus,
)

__all__ = ["Call", "Effect", "Interpreter", "Run"]

# The enum members every step reads, as module constants. On Python 3.11 reading a member off
# its enum class costs some 55 ns more than reading a global (on 3.12 and 3.13 about 10 ns), and
# a step reads eight: 7-10 % of W1(a) on 3.11 (docs/performance.md, "Reshape"). Drop these when
# 3.11 support goes; everywhere else the members are named where they are used.
_EXECUTING, _RESUMING = ThreadStatus.EXECUTING, ThreadStatus.RESUMING
_AFTER_STEP, _AFTER_RESUME = CheckpointType.AFTER_STEP, CheckpointType.AFTER_RESUME


class Interpreter(Failures):
    """One run over a workflow's data and state; the drivers perform what it yields.

    The entry points (`resume`, `callback`, `cancel`) and the moves of a thread are here; what
    a run keeps is `stmtflow.core._bookkeeping`'s, the resting rules of waits and conditions
    `stmtflow.core._waits`', failing steps `stmtflow.core._failures`', and how threads start
    and end (`ThreadLife.start_thread`, `ThreadLife.end_thread`) `stmtflow.core._threads`'.
    """

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

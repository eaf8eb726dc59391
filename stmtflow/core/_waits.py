"""The interpreter's resting rules for waits and conditions: arming, tearing down, waking.

A thread resting at a ``Wait`` has its events set up (`Waits._setups`, retried each resume
while they fail) and, once the wait ends, torn down (`Waits._teardowns`); a thread resting at
a ``WaitFor``, ``Join`` or ``ForEach`` is woken when nothing else can move and its condition
holds (`Waits._conditions`). A mixin of `stmtflow.core._interpreter.Interpreter`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from stmtflow.core._bookkeeping import Bookkeeping
from stmtflow.core._effects import (
    Call,
    CancelChild,
    Data,
    Effect,
    Run,
    describe,
    is_local,
    start_child,
    take_lock,
)
from stmtflow.dsl._child import Child
from stmtflow.dsl._kind import rules, truth
from stmtflow.dsl._lock import LockGrant
from stmtflow.dsl._statements import WaitFor
from stmtflow.errors import ExecutionError, StepLimitExceeded
from stmtflow.state import TERMINAL_STATUSES, CheckpointType, Thread, ThreadStatus, WaitEventStatus

__all__ = ["Waits"]


class Waits(Bookkeeping):
    """Setting up and tearing down events, and waking threads whose condition holds."""

    def _came_to_rest(self, thread: Thread) -> Run:
        """After a move that blocked or ended ``thread``: arm its wait's events, or tear down.

        Teardowns are due when the move ended the workflow (and with it every other thread).
        """
        if thread.status is ThreadStatus.WAITING_EVENT:
            if not self.state.unwinding:  # else once the compensations ran
                yield from self._setups(thread)
        elif self.state.status in TERMINAL_STATUSES:
            yield from self._teardowns(retry=False)

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

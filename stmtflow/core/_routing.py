"""Routing a delivered event to the thread and armed event it addresses (DESIGN §3.5).

Refusals change nothing: no thread waits on that event (`UnknownCallback`), the thread's wait
already fired or the ``pc`` differs from the armed one (`StaleCallback`), the named thread is not
waiting on events (`NotWaiting`), several threads wait on it and no ``thread_id`` was given
(`AmbiguousCallback`).
"""

from __future__ import annotations

from stmtflow.core._thread_index import ThreadIndex
from stmtflow.errors import AmbiguousCallback, NotWaiting, StaleCallback, UnknownCallback
from stmtflow.state import CallbackRequest, State, Thread, ThreadStatus, WaitEvent

__all__ = ["route"]


def route(
    req: CallbackRequest, state: State, index: ThreadIndex, where: str
) -> tuple[Thread, WaitEvent]:
    """The waiting thread and armed event ``req`` addresses, or the refusal of §3.5.

    ``index`` files ``state``'s threads (a targeted delivery finds its thread without a scan);
    ``where`` names the workflow in messages.
    """
    name = req.name
    if req.thread_id:
        thread = index.thread(req.thread_id)
        if thread is None:
            raise UnknownCallback(f"{where}: no thread {req.thread_id!r} (event {name!r})")
        candidates = [thread]
        if thread.cur_callback is not None:
            raise StaleCallback(
                f"{where}, thread {thread.id!r}: its wait {thread.cur_step!r} already fired "
                f"({thread.cur_callback!r}) and it has not moved on"
            )
        if thread.status is not ThreadStatus.WAITING_EVENT:
            raise NotWaiting(
                f"{where}, thread {thread.id!r} is not waiting on events "
                f"(it is {thread.status.value} at {thread.cur_step!r})"
            )
    else:
        candidates = [t for t in state.threads if t.status is ThreadStatus.WAITING_EVENT]
    matches = [(t, e) for t in candidates for e in t.wait_events if e.req.name == name]
    if not matches:
        fired = [t for t in state.threads if t.cur_callback == name]
        if fired and not req.thread_id:
            raise StaleCallback(
                f"{where}: event {name!r} already fired on thread {fired[0].id!r}, "
                "which has not moved on"
            )
        raise UnknownCallback(f"{where}: no thread waits on event {name!r}")
    if req.pc:
        armed = [(t, e) for t, e in matches if e.req.pc == req.pc]
        if not armed:
            raise StaleCallback(
                f"{where}: event {name!r} was armed at pc "
                f"{', '.join(str(e.req.pc) for _, e in matches)}, not {req.pc}"
            )
        matches = armed
    if len(matches) > 1:
        raise AmbiguousCallback(
            f"{where}: threads {', '.join(repr(t.id) for t, _ in matches)} all wait on "
            f"event {name!r}; pass thread_id"
        )
    return matches[0]

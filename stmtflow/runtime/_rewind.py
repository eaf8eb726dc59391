"""Rewind and fork: put an instance back to a snapshot of its history, or start a copy from one.

A write that records history events also files the data and state it leaves under its last
event (`stmtflow.stores._history`), for the latest ``snapshots`` events. `rewind` writes such a
snapshot back as the instance's data and state, under a lease, in one compare-and-set write
that also appends a ``rewound`` event; `fork` creates a new instance from it, leaving the
original untouched (not even written), with a ``rewound`` event (``detail["from"]``) first in
the new instance's history.

What is made to fit the restored state in the same write: its wake-up time (an armed timer
whose deadline passed meanwhile is due at once; a step the state stands on runs at the next
tick), its pending-input rows, its error. What is not undone: effects outside the data (a
step's e-mail), messages its inbox had taken after the snapshot (a buffered event delivered
then is not delivered again), and other instances. So a rewind is refused (`RewindError`,
nothing changed) when it could not hold together:

- no snapshot is kept for the event (too old, or the event was dropped from the history);
- a child started after the event still runs (cancel it first), or has ended (rewinding would
  start it again under the same derived id, which the store keeps: fork instead — a fork's
  children get ids of their own);
- the restored state waits on a child that has ended meanwhile (its end was delivered after
  the event and would never come again).

A fork is refused only when the snapshot waits on a child (that child reports to the original).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stmtflow.core._bodies import Bodies
from stmtflow.core._program import Program
from stmtflow.errors import ConflictError, NotFound, RewindError, StmtflowError
from stmtflow.runtime._history import HistoryLog
from stmtflow.runtime._inputs import inputs_of
from stmtflow.runtime._locks import claims_of
from stmtflow.runtime._unit import Unit, claim, open_unit
from stmtflow.state import TERMINAL_STATUSES, State, WaitEventStatus, load_state
from stmtflow.stores._history import HistoryEvent, HistoryStore, Snapshot
from stmtflow.stores.base import Record, Store

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine

__all__ = ["fork", "history_store", "kept_history", "rewind", "rewindable"]


def history_store(engine: Engine) -> HistoryStore:
    """The engine's store as a `HistoryStore`; a store that keeps none is a `StmtflowError`."""
    store: Store = engine.store
    if not isinstance(store, HistoryStore):
        raise StmtflowError(
            f"the {type(store).__name__} keeps no history (it is no HistoryStore): history, "
            "rewind and fork need a store that keeps one, such as every store of stmtflow's"
        )
    return store


def kept_history(engine: Engine, id: str) -> tuple[list[HistoryEvent], int]:
    """Instance ``id``'s events as the engine shows them: the latest ``history_limit`` (a SQL
    store keeps a few more between two trims), and how many older ones are gone."""
    events, dropped = history_store(engine).history(id)
    settings = engine._history
    if settings.enabled and len(events) > settings.limit:
        cut = len(events) - settings.limit
        events, dropped = events[cut:], dropped + cut
    return events, dropped


def _restorable(engine: Engine, event: HistoryEvent, last: int) -> bool:
    """Whether ``event``'s snapshot is among the latest ``snapshots`` the engine keeps."""
    settings = engine._history
    if event.snapshot is None:
        return False
    return not settings.enabled or event.snapshot > last - settings.snapshots


def rewindable(engine: Engine, id: str, events: list[HistoryEvent]) -> set[int]:
    """The seqs of ``events`` (instance ``id``'s) whose snapshot is still kept."""
    store = history_store(engine)
    last = events[-1].seq if events else 0
    found: dict[int, bool] = {}
    for e in events:
        if e.snapshot is not None and _restorable(engine, e, last) and e.snapshot not in found:
            found[e.snapshot] = store.snapshot(id, e.snapshot) is not None
    return {e.seq for e in events if e.snapshot is not None and found.get(e.snapshot, False)}


def _snapshot(engine: Engine, id: str, to: int, what: str) -> tuple[Snapshot, State]:
    """The snapshot to restore for event ``to`` of ``id``, and its state parsed."""
    if not isinstance(to, int) or isinstance(to, bool) or to < 1:
        raise RewindError(f"cannot {what} instance {id!r}: `to` must be an event seq >= 1")
    store = history_store(engine)
    events, dropped = kept_history(engine, id)
    event = next((e for e in events if e.seq == to), None)
    if event is None:
        if to <= dropped:
            raise RewindError(
                f"cannot {what} instance {id!r} to event {to}: the event was dropped from the "
                f"history (its first {dropped} events are gone; raise history_limit)"
            )
        last = events[-1].seq if events else 0
        raise RewindError(
            f"cannot {what} instance {id!r} to event {to}: it has no such event (last: {last})"
        )
    last = events[-1].seq
    restorable = event.snapshot is not None and _restorable(engine, event, last)
    snap = store.snapshot(id, event.snapshot) if restorable and event.snapshot else None
    if snap is None:
        raise RewindError(
            f"cannot {what} instance {id!r} to event {to} ({event.kind}): no snapshot is kept "
            "for it any more (snapshots are kept for the latest events only; raise snapshots=)"
        )
    return snap, load_state(snap.state)


def _children_after(events: list[HistoryEvent], to: int) -> list[str]:
    """The ids of the children the instance started after event ``to``."""
    return [
        str(e.detail["child"])
        for e in events
        if e.seq > to and e.kind == "child_started" and e.detail and "child" in e.detail
    ]


def _armed_children(state: State, children: dict[str, Record]) -> list[str]:
    """The children ``state`` waits on: armed events whose setup started one of ``children``."""
    return [
        event.req.setup_data
        for thread in state.threads
        for event in thread.wait_events
        if event.req.setup_data in children
    ]


def _check_children(
    engine: Engine, id: str, to: int, snap: Snapshot, state: State, *, fork: bool
) -> None:
    """Refuse what children would make inconsistent. "After the event" means after the write
    that recorded it (``snap.seq``, its last event): a child started in that write is armed
    in the snapshot itself."""
    events, _ = kept_history(engine, id)
    children = {r.id: r for r in engine.store.list(parent_id=id)}
    what = "fork" if fork else "rewind"
    ended = {s.value for s in TERMINAL_STATUSES}
    for child in _children_after(events, snap.seq):
        rec = children.get(child)
        if rec is None:
            continue  # pruned
        if rec.status not in ended:
            raise RewindError(
                f"cannot {what} instance {id!r} to event {to}: child {child!r}, started after "
                f"it, is still {rec.status}; cancel it first"
            )
        if not fork:
            raise RewindError(
                f"cannot rewind instance {id!r} to event {to}: child {child!r}, started after "
                f"it, has ended ({rec.status}) and would be started again under the same id; "
                "fork the instance instead"
            )
    for child in _armed_children(state, children):
        if fork:
            raise RewindError(
                f"cannot fork instance {id!r} at event {to}: the snapshot waits on child "
                f"{child!r}, which reports to {id!r}"
            )
        if children[child].status in ended:
            raise RewindError(
                f"cannot rewind instance {id!r} to event {to}: the snapshot waits on child "
                f"{child!r}, which has ended since (its end would never come again)"
            )


def _check_locks(id: str, to: int, state: State, bodies: Bodies, *, fork: bool) -> None:
    """Refuse a snapshot in which a thread waits for or holds a `Lock`: its slot was granted
    (or queued) in an order the store has moved on from, so restoring it would let the body
    run beside the lock's later holders. Rewinding to before the lock or after it is fine."""
    claims = claims_of(state, bodies)
    if claims:
        names = ", ".join(sorted({f"{c.name!r} (thread {c.thread_id!r})" for c in claims}))
        what = "fork" if fork else "rewind"
        raise RewindError(
            f"cannot {what} instance {id!r} to event {to}: the snapshot stands at or inside "
            f"Lock {names}; pick an event before the lock is reached or after it is left"
        )


def rewind(engine: Engine, id: str, to: int) -> None:
    """Restore instance ``id``'s data and state as they stood right after history event
    ``to`` (`Engine.rewind`)."""
    history_store(engine)
    engine.store.get(id)  # NotFound first
    with engine._chain(), open_unit(engine, claim(engine, id), engine.clock()) as current:
        snap, state = _snapshot(engine, id, to, "rewind")
        _check_children(engine, id, to, snap, state, fork=False)
        _check_locks(id, to, state, current.interpreter.bodies, fork=False)
        cls = engine.workflow_class(current.rec.workflow)
        unit = Unit(engine, current.rec, cls.model_validate_json(snap.data), state, current.now)
        unit.asking = current.asking  # what the store's input rows say now
        unit.locks = current.locks  # the lock rows stored now: the write releases them
        unit.history = HistoryLog(engine, current.rec.status)
        unit.interpreter.notes = unit.history.notes
        unit.history.note("rewound", detail={"to": to})
        # A snapshot written before a setup ran (the unit went on to run it) is due at once,
        # so that the setup runs again; anything else is due when its state says.
        unit.save(release=True, wake=current.now if _unsettled(state) else None)
        engine._warm.keep(unit)
        current.released = True  # the restoring unit dropped the lease


def fork(engine: Engine, id: str, to: int, new_id: str) -> None:
    """Start instance ``new_id`` from the snapshot of ``id``'s event ``to`` (`Engine.fork`)."""
    history_store(engine)
    original = engine.store.get(id)
    if not isinstance(new_id, str) or not new_id:
        raise RewindError(f"cannot fork instance {id!r}: new_id must be a non-empty string")
    try:
        engine.store.get(new_id)
    except NotFound:
        pass
    else:
        raise RewindError(f"cannot fork instance {id!r}: an instance {new_id!r} exists already")
    snap, state = _snapshot(engine, id, to, "fork")
    _check_children(engine, id, to, snap, state, fork=True)
    state = _renamed(state, new_id)
    cls = engine.workflow_class(original.workflow)
    wf = cls.model_validate_json(snap.data)
    program = Program(wf.definition(), type(wf), f"workflow {new_id!r} ({original.workflow})")
    _check_locks(id, to, state, Bodies(program, type(wf)), fork=True)
    now = engine.clock()
    record = Record(
        id=new_id,
        workflow=original.workflow,
        data=snap.data,
        state=state.model_dump_json(),
        status=state.status.value,
        wake_at=now,
        lease_owner=engine.owner,
        lease_expires=now + engine.lease,
    )
    try:
        rec = engine.store.create(record, inputs=inputs_of(wf, state))
    except ConflictError as exc:
        raise RewindError(f"cannot fork instance {id!r}: {exc}") from exc
    with engine._chain(), open_unit(engine, rec, now) as unit:
        unit.history.note("rewound", detail={"to": to, "from": id})
        unit.pending = True
        unit.save(release=True, wake=now if _unsettled(state) else None)


def _unsettled(state: State) -> bool:
    """Whether ``state`` has events still to set up (a unit stopped short of running them)."""
    return any(
        event.status in (WaitEventStatus.PENDING_SETUP, WaitEventStatus.SETUP_ERROR)
        for thread in state.threads
        for event in thread.wait_events
    )


def _renamed(state: State, new_id: str) -> State:
    """``state`` as the state of instance ``new_id`` (its id, and its armed requests')."""
    old = state.id

    def moved(req_owner: str) -> str:
        return new_id if req_owner in ("", old) else req_owner

    threads = [
        t.model_copy(
            update={
                "wait_events": tuple(
                    e.model_copy(
                        update={
                            "req": e.req.model_copy(
                                update={"workflow_id": moved(e.req.workflow_id)}
                            )
                        }
                    )
                    for e in t.wait_events
                )
            }
        )
        for t in state.threads
    ]
    teardowns = [
        e.model_copy(
            update={"req": e.req.model_copy(update={"workflow_id": moved(e.req.workflow_id)})}
        )
        for e in state.teardowns
    ]
    return state.model_copy(update={"id": new_id, "threads": threads, "teardowns": teardowns})

"""Which locks the threads of one instance wait for or hold: the `LockClaim`s of its state.

A claim follows from where a thread stands, so it is written with every state that changes it
(`Unit.save` hands the claims in the write's `Batch` when they changed) and never disagrees
with a committed state:

- a thread at a lock's wait whose event is set up waits for a slot (its key is the event's
  ``setup_data``, evaluated once when it arrived);
- a thread whose lock event fired, or that stands anywhere in the lock's body, holds its slot
  (the store keeps the key its row arrived with);
- a thread anywhere else, an ended thread, an ended instance: no claim, so the write that
  leaves the body, ends the thread, fails or cancels the instance releases the slot, and the
  store grants it to the next waiter in the same commit.

The lock belongs to the instance's thread, not to the worker running it: a worker that dies
holding it leaves the claim in the stored state, and whoever reclaims the instance after the
lease lapses runs the rest of the body and releases it.

Example:
    >>> import stmtflow as sf
    >>> from stmtflow.core._bodies import Bodies
    >>> from stmtflow.core._program import Program
    >>> program = Program(sf.S(sf.Step("a", print)), "doc", "doc")
    >>> claims_of(sf.new_state("a-1", "Doc"), Bodies(program, "doc"))
    ()
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stmtflow.analysis import walk
from stmtflow.core._bodies import Bodies
from stmtflow.core._program import Program
from stmtflow.dsl._kind import rules
from stmtflow.dsl._lock import Lock
from stmtflow.state import TERMINAL_STATUSES, State, Thread, ThreadStatus, WaitEventStatus
from stmtflow.stores._locks import LockClaim, lock_event

__all__ = ["changed_claims", "claims_of"]

_HAS_LOCKS: dict[Any, bool] = {}
"""Per program (by its cache key): whether any `Lock` is in it (most programs: none)."""


def _has_locks(program: Program) -> bool:
    found = _HAS_LOCKS.get(program.cache_key)
    if found is None:
        found = _HAS_LOCKS[program.cache_key] = any(
            isinstance(stmt, Lock) for stmt in walk(program.root)
        )
    return found


_MAY_LOCK: dict[Any, bool] = {}
"""Per workflow (by its bodies' cache key): whether any of its threads can stand in a `Lock`:
one is in the definition, or a body is built at run time (its statements are not known)."""


def _may_lock(bodies: Bodies) -> bool:
    found = _MAY_LOCK.get(bodies.cache_key)
    if found is None:
        root = bodies.root
        built = any(rules(stmt).body_fn(stmt) is not None for stmt in walk(root.root))
        found = _MAY_LOCK[bodies.cache_key] = built or _has_locks(root)
    return found


def claims_of(state: State, bodies: Bodies) -> tuple[LockClaim, ...]:
    """The claims of ``state``'s threads, in thread order (none once the instance ended)."""
    if state.status in TERMINAL_STATUSES or not _may_lock(bodies):
        return ()  # the common case, before every write of every unit: one look-up
    claims: list[LockClaim] = []
    for thread in state.threads:
        program = bodies.of(thread)
        if thread.cur_step and _has_locks(program):
            claims += _thread_claims(thread, program)
    return tuple(claims)


def _thread_claims(thread: Thread, program: Program) -> list[LockClaim]:
    found = program.find(thread.cur_step)
    if found is None:
        return []
    path = found[0]
    chain = program._walk_path(path)
    if chain is None:
        return []
    claims = []
    for depth, node in enumerate(chain[:-1]):
        if not isinstance(node, Lock):
            continue
        if path[depth] > 0:  # in the body
            claims.append(LockClaim(thread.id, node.name, None, node.limit))
            continue
        event = lock_event(node.name)
        if thread.status is ThreadStatus.RESUMING and thread.cur_callback == event:
            claims.append(LockClaim(thread.id, node.name, None, node.limit))  # granted
            continue
        for waiting in thread.wait_events:
            if waiting.req.name == event and waiting.status is WaitEventStatus.SETUP:
                key = waiting.req.setup_data
                claims.append(LockClaim(thread.id, node.name, key, node.limit, pc=waiting.req.pc))
    return claims


def changed_claims(
    now: tuple[LockClaim, ...], before: tuple[LockClaim, ...]
) -> tuple[LockClaim, ...] | None:
    """The claims a write carries: None when no lock row would change since the last write; a
    waiting claim of a thread that held the same lock then is marked ``again`` (it left the
    body and came back: it queues anew).

    The rows change only when a thread's claim appears, goes or queues anew: a waiter that was
    granted (its claim now held, the row granted already) keeps its row, so the write that
    takes the grant carries no claims and the store does no lock work for it."""
    if now == before:
        return None
    held = {(c.thread_id, c.name) for c in before if c.key is None}
    claims = tuple(
        replace(c, again=True) if c.key is not None and (c.thread_id, c.name) in held else c
        for c in now
    )
    if _pairs(now) == _pairs(before) and not any(c.again for c in claims):
        return None
    return claims


def _pairs(claims: tuple[LockClaim, ...]) -> set[tuple[str, str]]:
    return {(c.thread_id, c.name) for c in claims}

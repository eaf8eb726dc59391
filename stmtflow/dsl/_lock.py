"""``Lock``: a block its thread runs only while it holds one of ``limit`` slots of a key.

A lock is shared by every instance of a store (two payments of the same account never run at
once), so holding one is the runtime's business, as starting a child is: the interpreter alone
(plain ``resume``) cannot run a ``Lock`` and says so with a clear error.

The lock belongs to the instance's thread, not to the worker process running it: it is held
across a ``Wait`` inside the body, and a worker that crashes does not leak it (another worker
reclaims the instance when its lease lapses, runs the rest of the body and releases).

Example:
    >>> from stmtflow.dsl import Step
    >>> lock = Lock("pay", "account-7", Step("charge", print), limit=2)
    >>> lock.name, lock.key, lock.limit, [s.name for s in lock.body]
    ('pay', 'account-7', 2, ['charge'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stmtflow.dsl._checks import callable_problems, what
from stmtflow.dsl._kind import Cursor, Drawing, Exit, Kind, Site, register
from stmtflow.dsl._section import Section
from stmtflow.dsl._wait import On, Wait
from stmtflow.errors import StmtflowError
from stmtflow.state import CallbackRequest

if TYPE_CHECKING:
    from stmtflow.dsl._statements import Statement

__all__ = ["Lock", "LockGrant", "LockKey", "lock_key", "needs_lock_runtime"]

LockKey = str | Callable[[], str]
"""A lock's key: a non-empty string, or a zero-argument callable (usually a method of the
workflow, reading its data) evaluated when the thread reaches the lock."""


@dataclass(frozen=True, slots=True, init=False)
class Lock:
    """Run ``body`` while holding one of ``limit`` slots of ``key`` across all instances.

    The thread waits at the lock until a slot of ``key`` is free; waiters are served in
    arrival order. The slot is released when the body ends, and also when the thread or the
    instance ends, fails or is cancelled. ``key`` is a string or a zero-argument callable
    evaluated once, when the thread arrives.

    Example:
        >>> from stmtflow.dsl import Step
        >>> Lock("pay", lambda: "acct-1", Step("charge", print)).limit
        1
    """

    name: str
    key: Any = field(compare=False)
    body: tuple[Statement, ...]
    limit: Any
    gate: Wait = field(compare=False, repr=False)
    """Where the thread waits for its slot: a `Wait` named ``name`` on the event
    ``f"{name}.lock"``, which the store's grant fires (child 0 of the lock)."""

    def __init__(self, name: str, key: LockKey, *body: Statement, limit: int = 1) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "body", tuple(body))
        object.__setattr__(self, "limit", limit)
        gate = Wait(name, On(f"{name}.lock", LockGrant(self), Section()))
        object.__setattr__(self, "gate", gate)


class LockGrant:
    """The handler of a lock's event: set up by the runtime (the thread's claim is written with
    the checkpoint after it), fired by the store's grant, torn down by nothing (a thread that
    stops waiting no longer claims, and its row goes with that write)."""

    type = "LockGrant"

    __slots__ = ("lock",)

    def __init__(self, lock: Lock) -> None:
        self.lock = lock

    def setup(self, req: CallbackRequest) -> str:
        """Claiming a slot is the runtime's: the interpreter hands it over instead of calling
        this (which only explains that)."""
        raise StmtflowError(needs_lock_runtime(self.lock))

    def handle(self, req: CallbackRequest, input: Any) -> None:
        """The slot is held: the thread goes on into the body."""

    def teardown(self, req: CallbackRequest, handled: bool) -> None:
        """Nothing to undo here: the claim follows from the state."""


def key_problems(key: object) -> list[str]:
    """A key must be a non-empty string or a zero-argument callable."""
    if isinstance(key, str):
        return [] if key else ["key must be a non-empty string or a callable, got ''"]
    if callable(key):
        return callable_problems("key", key, required=True)
    return [f"key must be a non-empty string or a zero-argument callable, got {what(key)}"]


def limit_problems(limit: object) -> list[str]:
    """A limit must be a whole number of slots, at least 1."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        return [f"limit must be an int of at least 1, got {what(limit)}"]
    return [] if limit >= 1 else [f"limit must be at least 1, got {limit}"]


def lock_key(lock: Lock) -> str:
    """The key ``lock`` takes now: the string, or what the callable returns.

    Raises:
        StmtflowError: the callable returned something other than a non-empty string.
    """
    key = lock.key() if callable(lock.key) else lock.key
    if not isinstance(key, str) or not key:
        raise StmtflowError(
            f"Lock {lock.name!r}: its key must give a non-empty string, got {what(key)}"
        )
    return key


def needs_lock_runtime(lock: Lock | None = None) -> str:
    """The message for a ``Lock`` driven without a runtime."""
    which = "a Lock" if lock is None else f"Lock {lock.name!r}"
    return (
        f"{which} holds a slot shared by every instance of a store, which needs a "
        "runtime to keep it: run this workflow with stmtflow.Engine on "
        "a store (plain resume cannot take locks)"
    )


class LockKind(Kind[Lock]):
    statement = Lock

    def children(self, stmt: Lock) -> tuple[Any, ...]:
        return (stmt.gate, *stmt.body)

    def child_path(self, stmt: Lock, index: int, kid: object, path: str) -> str:
        if index == 0:
            return f"{path}.Lock({stmt.name!r}) (its wait for a slot)"
        return f"{path}.Lock({stmt.name!r})[{index - 1}]"

    def problems(self, stmt: Lock, site: Site) -> list[str]:
        return key_problems(stmt.key) + limit_problems(stmt.limit)  # the gate checks the name

    def what_runs(self, stmt: Lock) -> str:
        return f"the key of Lock {stmt.name!r}"

    def enter(self, stmt: Lock, cursor: Cursor) -> Any:
        cursor.into(0, stmt.gate)

    def after(self, stmt: Lock, index: int, cursor: Cursor) -> Any:
        if index < len(stmt.body):
            cursor.into(index + 1, stmt.body[index])
        return None

    def json(self, stmt: Lock, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        key = "lazy" if callable(stmt.key) else stmt.key
        return {
            "type": self.label,
            "name": stmt.name,
            "key": key,
            "limit": stmt.limit,
            "body": [dump(kid) for kid in stmt.body],
        }

    def draw(self, stmt: Lock, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        key = "key(...)" if callable(stmt.key) else repr(stmt.key)
        slots = "" if stmt.limit == 1 else f", {stmt.limit} slots"
        head = drawing.box(entry, f"lock {stmt.name!r} on {key}{slots}", "wait", stmt.name)
        exits = [Exit(head)]
        for index in range(len(stmt.body)):
            exits = drawing.child((index + 1,), exits)
        tail = drawing.box(exits, f"release {stmt.name!r}", "step")
        return [Exit(tail)]


register(LockKind())

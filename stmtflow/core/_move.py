"""What a thread's move is: the values `stmtflow.core._program.Program` hands the interpreter.

A move (`Move`) says where the thread comes to rest (its `Outcome`), the threads it starts
(`Spawn`), the groups it joins, its ``foreach`` progress (`KEEP_AS_IS` when untouched) and what it
did to the ``Try`` statements around the thread (`Scope`). The interpreter applies it; nothing
here changes a state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

from stmtflow.dsl._kind import Ended
from stmtflow.dsl._statements import ForEach, Join, Step, Wait, WaitFor
from stmtflow.state import Frame

__all__ = ["KEEP_AS_IS", "Counts", "Move", "Outcome", "Path", "Scope", "Spawn"]

Path: TypeAlias = tuple[int, ...]


Outcome: TypeAlias = Step | Wait | WaitFor | Join | ForEach | Ended
"""Where a move leaves a thread: at a step (its next move runs it), at a wait (a ``Sleep`` is
one), at a ``WaitFor`` until its condition is true, at a ``Join`` or ``ForEach`` until enough
threads of its group ended, or ended. The statement itself is the tag, so a move allocates no
result object."""

Counts: TypeAlias = Callable[[str], tuple[int, int]]
"""A group's live threads and its threads ended since its last ``Join`` (`Cursor.group_count`
without the threads a move spawns)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What a move did to the ``Try`` statements around a thread (None when it touched none).

    Attributes:
        frames: the thread's frames after the move (`stmtflow.state.Frame`).
        compensate: for each ``Compensate()`` the move passed, the ``pc`` of the frame of the
            ``Try`` whose catch it stands in: the thread's steps completed since are undone.
    """

    frames: tuple[Frame, ...]
    compensate: tuple[int, ...] = ()


class Spawn(NamedTuple):
    """A thread a move starts: the ``Go`` (or ``ForEach``), the new thread's id, arg and group."""

    go: Any
    thread_id: str
    arg: Any = None
    group: str | None = None


KEEP_AS_IS: Any = object()
"""`Move.keep` when the move leaves the thread's ``foreach`` progress as it is."""


@dataclass(slots=True)
class Move:
    """What a thread's next move does, for the interpreter to apply.

    Attributes:
        outcome: where the thread comes to rest.
        spawns: the threads it starts.
        closes: groups joined, with whether their live threads are ended.
        keep: the thread's new ``foreach`` progress, or `KEEP_AS_IS`.
        scope: what it did to the ``Try``s around the thread (`Scope`), or None.
    """

    outcome: Outcome
    spawns: list[Spawn]
    closes: list[tuple[str, bool]] = field(default_factory=list)
    keep: Any = KEEP_AS_IS
    scope: Scope | None = None

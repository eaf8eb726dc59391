"""The parsed states the last units of an engine ended with, kept for the next unit on each.

Parsing and checking a state costs a pass over a document that grows with the threads; a unit
that comes back to the record its engine last wrote can skip both (`WarmStates`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stmtflow.core._thread_index import ThreadIndex
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.state import State
from stmtflow.stores import Record

if TYPE_CHECKING:
    from stmtflow.runtime._unit import Unit

__all__ = ["WarmStates"]

_WARM_LIMIT = 64
"""How many instances' parsed states an engine keeps for its next unit on them."""


@dataclass(frozen=True, slots=True)
class _Warm:
    state_json: str
    state: State
    cls: type[WorkflowState]
    index: ThreadIndex


class WarmStates:
    """The parsed states the last units of an engine ended with, by instance id (a few dozen).

    A unit on the same record reuses one only if the stored state is byte for byte what that
    unit wrote and the type is still registered to the same class: then it is what parsing
    would give, and it fits the definition (an interpreter of that class left it), without
    parsing and checking a document that grows with the threads.
    """

    def __init__(self, limit: int = _WARM_LIMIT) -> None:
        self._limit = limit
        self._states: dict[str, _Warm] = {}

    def take(
        self, rec: Record, cls: type[WorkflowState]
    ) -> tuple[State, ThreadIndex] | tuple[None, None]:
        """The state (and its interpreter's index) kept for ``rec``, if still valid; forgets it."""
        warm = self._states.pop(rec.id, None)
        if warm is None or warm.state_json != rec.state or warm.cls is not cls:
            return None, None
        return warm.state, warm.index

    def keep(self, unit: Unit) -> None:
        """Remember a finished unit's state for the next unit on the same record."""
        states = self._states
        states.pop(unit.rec.id, None)
        if len(states) >= self._limit:
            states.pop(next(iter(states)), None)
        states[unit.rec.id] = _Warm(
            unit.saved[1], unit.state, type(unit.wf), unit.interpreter.index
        )

"""What running a state may come to, and what a state's code is handed.

A state's code returns one of `Next` (go to another state with this input), `Done` (the
frame's machine succeeded with this output), `Failed` (it failed, not to be retried or caught:
a ``Fail`` state), `Blocked` (it waits; run it again later) or `Again` (run it again now: a
retry without back-off); a failure to be retried or caught is raised as `AslFailure`.

Example:
    >>> Next("B", {"x": 1}).state
    'B'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Again", "Blocked", "Done", "Failed", "Next", "Outcome", "StateRun"]


@dataclass(frozen=True, slots=True)
class Next:
    state: str
    output: Any


@dataclass(frozen=True, slots=True)
class Done:
    output: Any


@dataclass(frozen=True, slots=True)
class Failed:
    error: str | None
    cause: str | None


@dataclass(frozen=True, slots=True)
class Blocked:
    pass


@dataclass(frozen=True, slots=True)
class Again:
    pass


Outcome = Next | Done | Failed | Blocked | Again


@dataclass(slots=True)
class StateRun:
    """One state being run: the runner (a `stmtflow.asl._machine.Runner`), frame and spec."""

    runner: Any
    frame: dict[str, Any]
    spec: dict[str, Any]

    def finish(self, output: Any) -> Next | Done:
        """Where the state goes with ``output``: its ``Next``, or the end of its machine."""
        if self.spec.get("End"):
            return Done(output)
        return Next(self.spec["Next"], output)

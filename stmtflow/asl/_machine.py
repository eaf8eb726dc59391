"""Running a state machine by frames: plain JSON that says where every branch stands.

A *frame* is one running state machine: the top level, a Parallel branch or a Map iteration.
It holds the state it is at, that state's raw input, and what the state is waiting for (a
timer, a task token, retry back-off, its own child frames). The whole execution is a tree of
frames kept in the workflow's data, so a stored instance holds exactly where it stands: resuming
reads the frames and goes on, replaying nothing, and the stored size follows what is running
now (the branches of the Parallel or Map in progress), not the history.

`Runner.advance` moves every frame as far as it can: until the execution ends, every frame
waits (a Wait's timer not yet due, a task token not yet sent back, a retry's back-off), or the
runner has done a unit of work worth a checkpoint (one Task call, or ``budget`` states). The
caller — a step of the workflow `load` builds — saves the frames and, if they wait, waits
for the earliest due time or a token.

Example:
    >>> from datetime import datetime, UTC
    >>> definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": True}}}
    >>> from stmtflow.asl._frames import new_execution
    >>> execution = new_execution(definition, {"x": 0}, datetime(2024, 1, 1, tzinfo=UTC))
    >>> Runner(definition, {}, lambda: datetime(2024, 1, 1, tzinfo=UTC)).advance(execution)
    >>> execution["result"]
    {'status': 'SUCCEEDED', 'output': 1}
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from stmtflow.asl._dataflow import put
from stmtflow.asl._failure import AslFailure
from stmtflow.asl._frames import settle
from stmtflow.asl._outcome import Again, Blocked, Done, Failed, Next, StateRun
from stmtflow.asl._retry import delay, error_output, takes
from stmtflow.asl._states import run_state

__all__ = ["Runner"]

Resources = dict[str, Callable[..., Any]]


class Runner:
    """Moves the frames of one execution (see the module's docstring)."""

    def __init__(
        self,
        definition: dict[str, Any],
        resources: Resources,
        now: Callable[[], datetime],
        *,
        budget: int = 1000,
        name: str = "StateMachine",
    ) -> None:
        self.definition = definition
        self.resources = resources
        self.now = now
        self.budget = budget
        self.name = name
        self.moves = 0
        self.halt = False

    def advance(self, execution: dict[str, Any]) -> None:
        """Move the execution until it ends, waits, or did a checkpoint's worth of work."""
        if execution.get("result") is not None:
            return
        self.moves, self.halt = 0, False
        self.execution = execution
        root = execution["root"]
        self.run_frame(root)
        end = root.get("end")
        if end is not None:
            if "error" in end or "failed" in end:
                execution["result"] = {
                    "status": "FAILED",
                    "error": end.get("error"),
                    "cause": end.get("cause"),
                }
            else:
                execution["result"] = {"status": "SUCCEEDED", "output": end["output"]}

    def machine(self, where: list[list[Any]]) -> dict[str, Any]:
        """The state machine (``StartAt``, ``States``) a frame at ``where`` runs."""
        machine = self.definition
        for state_name, branch in where:
            spec = machine["States"][state_name]
            if spec["Type"] == "Parallel":
                machine = spec["Branches"][branch]
            else:
                machine = spec.get("ItemProcessor") or spec["Iterator"]
        return machine

    def context(self, frame: dict[str, Any]) -> dict[str, Any]:
        """The context object ``$$`` for the frame's current state."""
        ex = self.execution
        ctx: dict[str, Any] = {
            "Execution": {
                "Id": f"arn:stmtflow:execution:{self.name}:{ex['name']}",
                "Input": ex["input"],
                "Name": ex["name"],
                "RoleArn": "arn:stmtflow:role:local",
                "StartTime": ex["start"],
            },
            "StateMachine": {"Id": f"arn:stmtflow:stateMachine:{self.name}", "Name": self.name},
            "State": {
                "Name": frame["at"],
                "EnteredTime": frame["entered"],
                "RetryCount": frame.get("attempt", 0),
            },
        }
        if frame.get("token"):
            ctx["Task"] = {"Token": frame["token"]}
        if "item" in frame:
            ctx["Map"] = {"Item": frame["item"]}
        return ctx

    def new_token(self) -> str:
        return uuid.uuid4().hex

    def spend(self, calls: int = 0) -> None:
        """Count work; a Task call or the state budget ends this advance."""
        self.moves += 1
        if calls or self.moves >= self.budget:
            self.halt = True

    def run_frame(self, frame: dict[str, Any]) -> None:
        """Move one frame until it ends or waits (or the runner halts)."""
        machine = self.machine(frame["where"])
        while "end" not in frame and not self.halt:
            spec = machine["States"][frame["at"]]
            try:
                outcome = run_state(StateRun(self, frame, spec))
            except AslFailure as failure:
                outcome = self._recover(frame, spec, failure)
            if isinstance(outcome, Blocked):
                return
            if isinstance(outcome, Again):
                continue
            self.spend()
            if isinstance(outcome, Next):
                self._enter(frame, outcome.state, outcome.output)
            elif isinstance(outcome, Done):
                settle(frame)
                frame["end"] = {"output": outcome.output}
            elif isinstance(outcome, Failed):
                settle(frame)
                frame["end"] = {"failed": True, "error": outcome.error, "cause": outcome.cause}

    def _enter(self, frame: dict[str, Any], state: str, input: Any) -> None:
        settle(frame)
        frame.update(at=state, input=input, entered=self.now().isoformat(), attempt=0)
        frame.pop("retries", None)

    def _recover(self, frame: dict[str, Any], spec: dict[str, Any], failure: AslFailure) -> Any:
        """Retry or Catch a failure of a Task, Parallel or Map; else the frame fails."""
        settle(frame)
        if spec["Type"] not in ("Task", "Parallel", "Map"):
            return Failed(failure.error, failure.cause)
        retriers = spec.get("Retry", [])
        counts = frame.setdefault("retries", [0] * len(retriers))
        for n, retrier in enumerate(retriers):
            if not takes(retrier["ErrorEquals"], failure.error):
                continue
            if counts[n] >= retrier.get("MaxAttempts", 3):
                break
            wait = delay(retrier, counts[n])
            counts[n] += 1
            frame["attempt"] = frame.get("attempt", 0) + 1
            now = self.now()
            frame["phase"] = "retry"
            frame["due"] = _after(now, wait).isoformat()
            return Again() if wait <= 0 else Blocked()
        for catcher in spec.get("Catch", []):
            if takes(catcher["ErrorEquals"], failure.error):
                try:
                    output = put(
                        frame["input"],
                        catcher.get("ResultPath", "$"),
                        error_output(failure.error, failure.cause),
                    )
                except AslFailure as bad:
                    return Failed(bad.error, bad.cause)
                return Next(catcher["Next"], output)
        return Failed(failure.error, failure.cause)


def _after(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)

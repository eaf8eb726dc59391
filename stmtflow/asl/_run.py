"""`run`: one execution of a state machine in memory, with a fake clock; and `AslResult`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stmtflow.asl._frames import new_execution, next_due
from stmtflow.asl._machine import Runner

__all__ = ["AslResult", "run"]


@dataclass(frozen=True, slots=True)
class AslResult:
    """How an execution ended: ``status`` "SUCCEEDED" (with ``output``) or "FAILED"."""

    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None


def run(definition: Any, input: Any = None, *, resources: Any = None) -> AslResult:
    if isinstance(definition, str):
        definition = json.loads(definition)
    clock = [datetime(2024, 1, 1, tzinfo=UTC)]
    runner = Runner(definition, dict(resources or {}), lambda: clock[0])
    execution = new_execution(definition, input, clock[0])
    while execution["result"] is None:
        runner.advance(execution)
        if execution["result"] is None and not runner.halt:
            due = next_due(execution)
            if due is None:
                return AslResult("FAILED", error="States.Runtime", cause="waits for a task token")
            clock[0] = max(clock[0], datetime.fromisoformat(due))
    r = execution["result"]
    return AslResult(r["status"], r.get("output"), r.get("error"), r.get("cause"))


def _conformance_run(definition: dict[str, Any], input: Any) -> dict[str, Any]:
    r = run(definition, input)
    return {"status": r.status, "output": r.output, "error": r.error, "cause": r.cause}

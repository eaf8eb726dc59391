"""`run`: one execution of a state machine, in memory, on a fake clock; and `AslResult`.

`run` drives the workflow `load` builds through `stmtflow.testing.WorkflowHarness` — the
production engine over the memory store — and moves the harness's clock straight to each due
time, so a Wait of a day or a retry's back-off costs nothing. A Task waiting for a task token
has nobody to send it back here: the run ends FAILED with ``States.Timeout`` at the Task's
``TimeoutSeconds`` (the clock jumps there), or at once, ``States.Runtime``, without one.

Example:
    >>> run({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 86400, "End": True}}},
    ...     {"slept": True})
    AslResult(status='SUCCEEDED', output={'slept': True}, error=None, cause=None)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stmtflow.asl._frames import next_due
from stmtflow.asl._workflow import load

__all__ = ["AslResult", "run"]

START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AslResult:
    """How an execution ended.

    Attributes:
        status: ``"SUCCEEDED"`` or ``"FAILED"``.
        output: the final output (SUCCEEDED).
        error: the error name (FAILED; None for a ``Fail`` state without an ``Error``).
        cause: the cause, when there is one (FAILED).
    """

    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None


def run(
    definition: Any,
    input: Any = None,
    *,
    resources: Mapping[str, Callable[..., Any]] | None = None,
) -> AslResult:
    """Run the state machine ``definition`` once on ``input``; see the module's docstring.

    Raises:
        DefinitionError: listing every problem of the definition.
    """
    from stmtflow.testing import WorkflowHarness

    cls = load(definition, resources=resources)
    harness = WorkflowHarness(cls, data={"input": input}, start=START, id="execution")
    harness.start()
    while harness.data.result is None:
        due = next_due(harness.data.execution)
        if due is None:
            return AslResult(
                "FAILED",
                error="States.Runtime",
                cause="a Task waits for a task token, and a run has nobody to send it back",
            )
        harness.advance(max(datetime.fromisoformat(due) - harness.now, timedelta(0)))
    result = harness.data.result
    return AslResult(
        result["status"], result.get("output"), result.get("error"), result.get("cause")
    )


def conformance_run(definition: dict[str, Any], input: Any) -> dict[str, Any]:
    """`run` as the conformance checker calls it: a dict with status, output, error, cause."""
    r = run(definition, input)
    return {"status": r.status, "output": r.output, "error": r.error, "cause": r.cause}


_conformance_run = conformance_run

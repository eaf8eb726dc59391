"""Amazon States Language: run Step Functions state machines as stmtflow workflows.

- `load` turns a state machine (a dict or JSON text) into a workflow class that the engine
  runs like any other: on SQLite or PostgreSQL, durable across crashes, a Wait a durable timer;
- `run` runs one execution in memory on a fake clock and returns an `AslResult`;
- `validate` / `problems` check a definition, every problem at once (`DefinitionError`);
- a Task's resource raises `TaskError` to fail with an error name of its choosing; an
  instance whose machine ended FAILED fails with `AslExecutionFailed`.

docs/asl.md tells what is supported, the data flow, and the differences from AWS.

Example:
    >>> from stmtflow import asl
    >>> asl.run({"StartAt": "Hi", "States": {"Hi": {"Type": "Pass", "End": True}}}, {"a": 1})
    AslResult(status='SUCCEEDED', output={'a': 1}, error=None, cause=None)
"""

from stmtflow.asl._run import AslResult, conformance_run, run
from stmtflow.asl._validate import problems, validate
from stmtflow.asl._workflow import TOKEN_EVENT, AslWorkflow, load
from stmtflow.errors import AslExecutionFailed, DefinitionError, TaskError

__all__ = [
    "TOKEN_EVENT",
    "AslExecutionFailed",
    "AslResult",
    "AslWorkflow",
    "DefinitionError",
    "TaskError",
    "conformance_run",
    "load",
    "problems",
    "run",
    "validate",
]

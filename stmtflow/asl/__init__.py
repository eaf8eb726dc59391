"""Amazon States Language: run Step Functions state machines as stmtflow workflows.

Example:
    >>> from stmtflow import asl
    >>> asl.run({"StartAt": "Hi", "States": {"Hi": {"Type": "Pass", "End": True}}}, {"a": 1})
    AslResult(status='SUCCEEDED', output={'a': 1}, error=None, cause=None)
"""

from stmtflow.asl._failure import TaskError
from stmtflow.asl._run import AslResult, run

__all__ = ["AslResult", "TaskError", "run"]

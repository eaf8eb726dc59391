"""`AslFailure`: an ASL error travelling through a state machine (an error name and a cause).

States fail with a name (``States.Runtime``, ``States.TaskFailed``, a user's ``NotFound``) and
a cause (free text). A failure is an exception inside the interpreter so that deep helpers (a
path that matches nothing, an intrinsic given a bad argument) can end the state at once; the
state's Retry and Catch then see the name, and the execution ends with it if nothing catches.

`stmtflow.errors.TaskError` is the public form: a resource raises it to fail with a chosen
error name. `AslFailure` itself never leaves the interpreter.

Example:
    >>> str(AslFailure("States.Runtime", "no such path"))
    'States.Runtime: no such path'
"""

from __future__ import annotations

from stmtflow.errors import TaskError

__all__ = ["AslFailure", "error_of"]


class AslFailure(Exception):
    """A state failed with ``error`` (a name, or None for a bare ``Fail``) and ``cause``."""

    def __init__(self, error: str | None, cause: str | None = None) -> None:
        self.error = error
        self.cause = cause
        super().__init__(f"{error}: {cause}" if cause else str(error))


def error_of(exc: BaseException) -> AslFailure:
    """The ASL failure an exception raised by a resource stands for."""
    if isinstance(exc, AslFailure):
        return exc
    if isinstance(exc, TaskError):
        return AslFailure(exc.error, exc.cause)
    return AslFailure(type(exc).__name__, str(exc))

"""`AslFailure`: an ASL error travelling through a state machine (an error name and a cause).

States fail with a name (``States.Runtime``, ``States.TaskFailed``, a user's ``NotFound``) and
a cause (free text). A failure is an exception inside the interpreter so that deep helpers (a
path that matches nothing, an intrinsic given a bad argument) can end the state at once; the
state's Retry and Catch then see the name, and the execution ends with it if nothing catches.

`TaskError` is the public form: a resource raises it to fail with a chosen error name.

Example:
    >>> str(AslFailure("States.Runtime", "no such path"))
    'States.Runtime: no such path'
"""

from __future__ import annotations

__all__ = ["AslFailure", "TaskError", "error_of"]


class AslFailure(Exception):
    """A state failed with ``error`` (a name, or None for a bare ``Fail``) and ``cause``."""

    def __init__(self, error: str | None, cause: str | None = None) -> None:
        self.error = error
        self.cause = cause
        super().__init__(f"{error}: {cause}" if cause else str(error))


class TaskError(Exception):
    """Raised by a Task's resource to fail the Task with the error name ``error``.

    Any other exception fails the Task too, named by its class (``KeyError``), as a Lambda
    function's errors are named by their type.

    Example:
        >>> TaskError("Order.NotFound", "no order 42").error
        'Order.NotFound'
    """

    def __init__(self, error: str, cause: str | None = None) -> None:
        self.error = error
        self.cause = cause
        super().__init__(f"{error}: {cause}" if cause else error)


def error_of(exc: BaseException) -> AslFailure:
    """The ASL failure an exception raised by a resource stands for."""
    if isinstance(exc, AslFailure):
        return exc
    if isinstance(exc, TaskError):
        return AslFailure(exc.error, exc.cause)
    return AslFailure(type(exc).__name__, str(exc))

"""Every error stmtflow raises, under one root.

```
StmtflowError
├── DefinitionError (ValueError)      a definition is invalid; ``.issues`` lists every problem
├── DefinitionMismatch                stored state names something the definition no longer has
├── StepError                         a step's action raised; ``.step``, cause chained
├── CallbackError                     the delivery of an event (a "callback") was refused or failed
│   ├── UnknownCallback (LookupError) no thread waits on that event / thread / workflow
│   ├── StaleCallback                 the wait already fired, or the pc is not the armed one
│   ├── NotWaiting                    the named thread does not wait on events
│   ├── AmbiguousCallback             several threads wait on the event and no thread id was given
│   ├── WorkflowFinished              the workflow ended
│   ├── CallbackInputError (ValueError) the input does not match the handler's schema; ``.problems``
│   └── HandlerError                  ``handle`` raised; cause chained
├── StepLimitExceeded                 one resume ran more than ``max_steps`` actions
├── ConflictError                     a store write lost a race (compare-and-set on the version)
├── NotFound (LookupError)            no stored instance (or schedule) with that id (or name)
├── RewindError                       a rewind or fork was refused: no snapshot, a child runs, ...
├── StateFormatError (ValueError)     state JSON is malformed
├── ExecutionError                    other user code raised (definition(), a lazy condition or id,
│                                     a WaitFor handler), or an async callable reached a sync driver
├── OutboxError                       ``emit`` was misused: outside a step action, a payload that is
│                                     not JSON, or a store that keeps no outbox
├── GraphvizError (RuntimeError)      Graphviz's ``dot`` could not turn a diagram into an image
│   └── GraphvizNotFound              ``dot`` is not installed (or not on ``PATH``)
├── DagFailed                         a YAML DAG run ended with steps failed (or skipped)
├── TargetError (ValueError)          a TARGET (``file.py:Class``, ``module:Class``) won't load
├── ScheduleError (ValueError)       a schedule was refused: bad cron, time zone, workflow, ...
├── CliError                          the ``stmtflow`` command refused a request (one error line)
├── HarnessError (RuntimeError)       a `WorkflowHarness` was misused, or data failed to persist
├── SnapshotMismatch (AssertionError) a value differs from its snapshot file; the message is a diff
├── SnapshotMissing (AssertionError)  the snapshot file does not exist yet
├── TaskError                         an ASL Task's resource fails with the error name ``.error``
└── AslExecutionFailed                an ASL state machine ended FAILED (``error: cause``)
```
User exceptions are never swallowed: they are chained as ``__cause__``. An exception raised by
the caller's ``checkpoint`` function is not wrapped at all; it propagates unchanged.

The modules that raise an error re-export it where users met it first, so
``stmtflow.render.GraphvizNotFound``, ``stmtflow.testing.HarnessError`` and
``stmtflow.testing.SnapshotMismatch`` are these same classes.

Example:
    >>> import stmtflow as sf
    >>> try:
    ...     sf.validate(sf.S(sf.Break()))
    ... except sf.StmtflowError as exc:
    ...     type(exc).__name__, isinstance(exc, ValueError)
    ('DefinitionError', True)
"""

from __future__ import annotations

__all__ = [
    "AmbiguousCallback",
    "AslExecutionFailed",
    "CallbackError",
    "CallbackInputError",
    "CliError",
    "ConflictError",
    "DagFailed",
    "DefinitionError",
    "DefinitionMismatch",
    "ExecutionError",
    "GraphvizError",
    "GraphvizNotFound",
    "HandlerError",
    "HarnessError",
    "NotFound",
    "NotWaiting",
    "OutboxError",
    "RewindError",
    "ScheduleError",
    "SnapshotMismatch",
    "SnapshotMissing",
    "StaleCallback",
    "StateFormatError",
    "StepError",
    "StepLimitExceeded",
    "StmtflowError",
    "TargetError",
    "TaskError",
    "UnknownCallback",
    "WorkflowFinished",
]


class StmtflowError(Exception):
    """Root of every error stmtflow raises."""


class DefinitionError(StmtflowError, ValueError):
    """A workflow definition is invalid.

    Attributes:
        issues: every problem found, one readable line each.
    """

    def __init__(self, issues: list[str] | str) -> None:
        self.issues: list[str] = [issues] if isinstance(issues, str) else list(issues)
        if len(self.issues) == 1:
            message = f"invalid workflow definition: {self.issues[0]}"
        else:
            lines = "\n".join(f"  - {issue}" for issue in self.issues)
            message = f"invalid workflow definition ({len(self.issues)} problems):\n{lines}"
        super().__init__(message)


class DagFailed(StmtflowError):
    """A YAML DAG run (`stmtflow.dag`) could not complete: some steps failed for good.

    Raised by the DAG's last step, so the run's compensations unwind and the instance ends
    ``failed`` with this error kept; the message names each step that failed (with its error)
    and each one skipped because a dependency failed.
    """


class DefinitionMismatch(StmtflowError):
    """Stored state points at a name that the current definition lacks (or that changed kind)."""


class StepError(StmtflowError):
    """A step's action raised. The original exception is ``__cause__``.

    Attributes:
        step: name of the step whose action failed.
    """

    def __init__(self, message: str, *, step: str) -> None:
        super().__init__(message)
        self.step = step


class CallbackError(StmtflowError):
    """The delivery of an event was refused or its handler failed; nothing was changed.

    "Callback" in stmtflow's names (`handle_callback`, `CallbackRequest`, `CallbackError`) means
    the delivery of an event to the thread waiting on it.
    """


class UnknownCallback(CallbackError, LookupError):
    """No thread waits on that event name (or the thread id / workflow id is unknown)."""


class StaleCallback(CallbackError):
    """The wait already fired and its thread has not moved on, or the pc is not the armed one."""


class NotWaiting(CallbackError):
    """The named thread exists but does not wait on events."""


class AmbiguousCallback(CallbackError):
    """Several threads wait on the event and no ``thread_id`` was given."""


class WorkflowFinished(CallbackError):
    """The workflow has ended (finished, failed or cancelled)."""


class CallbackInputError(CallbackError, ValueError):
    """An event's input does not match the handler's input schema.

    Attributes:
        problems: one line per problem, each naming where in the input it is.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems: list[str] = list(problems or [])
        if self.problems:
            message = message + ":\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class HandlerError(CallbackError):
    """A handler's ``handle`` raised. The original exception is ``__cause__``."""


class StepLimitExceeded(StmtflowError):
    """One ``resume`` ran more actions than ``max_steps`` (a runaway loop)."""


class ConflictError(StmtflowError):
    """A store write lost a race: the record changed since it was read."""


class NotFound(StmtflowError, LookupError):
    """No stored workflow instance has that id."""


class StateFormatError(StmtflowError, ValueError):
    """State JSON is malformed or of an unknown format version."""


class ExecutionError(StmtflowError):
    """User code other than a step action or ``handle`` raised; the cause is chained."""


class OutboxError(StmtflowError):
    """``emit`` was misused: called outside a step action run by an engine, with a topic that
    is not a non-empty string or a payload that is not JSON, or on a store that keeps no
    outbox. Raised inside the action, so the step fails like any action error."""


class GraphvizError(StmtflowError, RuntimeError):
    """Graphviz's ``dot`` could not turn a diagram into an image."""


class GraphvizNotFound(GraphvizError):
    """The Graphviz ``dot`` program is not installed (or not on ``PATH``)."""


class RewindError(StmtflowError):
    """`Engine.rewind` or `Engine.fork` refused: no snapshot is kept for that history event,
    a child started after it still runs, ... (the message names the instance, the event and
    why); nothing was changed."""


class TargetError(StmtflowError, ValueError):
    """A TARGET that cannot be parsed, imported, or does not name a `WorkflowState` class."""


class ScheduleError(StmtflowError, ValueError):
    """A schedule was refused (a bad name, cron expression, time zone, overlap policy, catch-up
    window, input, or an unregistered workflow); nothing was stored."""


class CliError(StmtflowError):
    """The ``stmtflow`` command refused a request; the message is its one ``error:`` line.

    The command line prints it on stderr and exits with code 1, like every other error here.
    """


class HarnessError(StmtflowError, RuntimeError):
    """The harness was misused (e.g. ``send`` before ``start``), or data failed to persist."""


class SnapshotMismatch(StmtflowError, AssertionError):
    """The value differs from its snapshot file; the message holds a unified diff."""


class SnapshotMissing(StmtflowError, AssertionError):
    """The snapshot file does not exist yet; the message says how to create it."""


class TaskError(StmtflowError):
    """Raised by a Task's resource (`stmtflow.asl`) to fail the Task with the error ``error``.

    Any other exception fails the Task too, named by its class (``KeyError``), as a Lambda
    function's errors are named by their type; Retry and Catch match on the name.

    Example:
        >>> TaskError("Order.NotFound", "no order 42").error
        'Order.NotFound'
    """

    def __init__(self, error: str, cause: str | None = None) -> None:
        self.error = error
        self.cause = cause
        super().__init__(f"{error}: {cause}" if cause else error)


class AslExecutionFailed(StmtflowError):
    """An Amazon States Language state machine ended FAILED; the instance fails with this.

    The message is ``error: cause``; the instance's data keeps them apart (``data.result``).
    """

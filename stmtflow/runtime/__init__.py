"""The durable runtime: the `Engine` ties a store to workflow classes and runs units of work.

`Engine` is re-exported from `stmtflow` (``stmtflow.Engine``).
"""

from stmtflow.runtime._engine import Engine, Instance, PendingEvent, WorkerStats

__all__ = ["Engine", "Instance", "PendingEvent", "WorkerStats"]

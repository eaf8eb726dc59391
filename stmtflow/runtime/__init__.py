"""The durable runtime: the `Engine` ties a store to workflow classes and runs units of work.

`Engine` is re-exported from `stmtflow` (``stmtflow.Engine``). Its parts, one module each:

- ``_engine``: the `Engine` facade;
- ``_unit``: one unit of work (load, interpret, save under a lease) and when an instance is
  due next (``wake_at``);
- ``_worker``: ticks, the worker loop and its signals;
- ``_warm``: parsed states kept from one unit to the next on the same record;
- ``_reads``: what the engine answers with (`Instance`, `PendingEvent`, `WorkerStats`);
- ``_inputs``: the rows of what people are asked for (`PendingInput`), written with each state;
- ``_schedules`` (and the engine's methods, ``_scheduling``): starting instances on a cron
  calendar (`Schedule`);
- ``_loader``: importing a ``file.py:Class`` target;
- ``_outbox``: what steps `emit`, kept with their checkpoint and delivered to sinks;
  ``_sinks``: the Redis stream and NATS JetStream sinks;
- ``_observe``: log records and OpenTelemetry spans of units and steps;
- ``_operations``, ``_history``, ``_rewind``, ``_stuck``: history, rewind and fork, pruning,
  stuck work (docs/operations.md).
"""

from stmtflow.runtime._engine import Engine
from stmtflow.runtime._history import History
from stmtflow.runtime._outbox import Sink
from stmtflow.runtime._reads import Instance, PendingEvent, WorkerStats
from stmtflow.runtime._schedules import Schedule
from stmtflow.runtime._sinks import NatsSink, RedisStreamSink
from stmtflow.runtime._stuck import StuckItem
from stmtflow.stores import PendingInput
from stmtflow.stores._history import HistoryEvent
from stmtflow.stores._outbox import OutboxMessage

__all__ = [
    "Engine",
    "History",
    "HistoryEvent",
    "Instance",
    "NatsSink",
    "OutboxMessage",
    "PendingEvent",
    "PendingInput",
    "RedisStreamSink",
    "Schedule",
    "Sink",
    "StuckItem",
    "WorkerStats",
]

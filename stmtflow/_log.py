"""The ``stmtflow`` logger and the structured fields its records carry.

Every record the library logs comes from ``logging.getLogger("stmtflow")`` or one of its
children (``stmtflow.engine``, ``stmtflow.unit``, ``stmtflow.step``, ``stmtflow.outbox``,
``stmtflow.worker``, ``stmtflow.stores.nats``), so one line configures them all. Records about
an instance carry its identity as attributes, passed with ``extra=`` (`fields`), for a
structured formatter or a filter to read: ``instance``, ``workflow``, ``thread_id``, ``step``,
``attempt``. (``thread_id``, not ``thread``: `logging.LogRecord` already has a ``thread``, the
OS thread's id.)

Levels: a unit of work's start and end and a step's start and end are DEBUG; a failed step
attempt, a failed outbox delivery and an error kept on an instance are WARNING.

Example:
    >>> import logging
    >>> record = logging.makeLogRecord(fields("order-1", thread_id="_main_", step="pay", attempt=1))
    >>> record.instance, record.thread_id, record.step, record.attempt
    ('order-1', '_main_', 'pay', 1)
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["fields", "logger"]

logger = logging.getLogger("stmtflow")
"""The root of the library's loggers."""


def fields(
    instance: str,
    *,
    workflow: str | None = None,
    thread_id: str | None = None,
    step: str | None = None,
    attempt: int | None = None,
) -> dict[str, Any]:
    """The ``extra=`` of a record about ``instance`` (fields left None are left out)."""
    found: dict[str, Any] = {"instance": instance}
    if workflow is not None:
        found["workflow"] = workflow
    if thread_id is not None:
        found["thread_id"] = thread_id
    if step is not None:
        found["step"] = step
    if attempt is not None:
        found["attempt"] = attempt
    return found


# A library's records go where the application's logging config sends them; without one,
# nothing is printed (instead of Python's last-resort handler writing warnings to stderr).
logger.addHandler(logging.NullHandler())

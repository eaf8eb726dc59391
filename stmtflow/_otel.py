"""OpenTelemetry spans, when ``opentelemetry-api`` is installed (``stmtflow[otel]``).

The engine opens a span per unit of work (``stmtflow.unit``) and, inside it, one per step
action (``stmtflow.step``), with the attributes ``stmtflow.instance``, ``stmtflow.workflow``,
``stmtflow.thread``, ``stmtflow.step`` and ``stmtflow.attempt``; a failed action records its
exception and sets the span's status to ERROR. Spans go wherever the application's tracer
provider sends them; with the API installed and no provider configured they are the API's
no-op spans.

Without the package, `TRACER` is None and the engine opens no span at all: the import is
tried once, here, and nothing else is done per step (docs/operations.md measures both cases).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TRACER", "current", "error_status"]

try:
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - depends on the environment
    _trace = None  # type: ignore[assignment]

TRACER: Any = None if _trace is None else _trace.get_tracer("stmtflow")
"""The library's tracer (a proxy that follows the provider the application sets later), or
None without ``opentelemetry-api``."""


def current(span: Any) -> Any:
    """A context manager making ``span`` the current span inside it (it does not end it, nor
    record what is raised: the caller does)."""
    return _trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    )


def error_status(span: Any, exc: BaseException) -> None:
    """Mark ``span`` failed by ``exc``: the exception recorded, status ERROR."""
    span.record_exception(exc)
    span.set_status(_trace.Status(_trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))

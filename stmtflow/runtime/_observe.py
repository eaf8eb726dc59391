"""What the engine tells the outside about its work: log records and OpenTelemetry spans.

`observed_unit` wraps a unit of work (DEBUG records at its start and end, a ``stmtflow.unit``
span); `observed_step` wraps one step action (DEBUG at start and end, WARNING when it raises,
a ``stmtflow.step`` span with error status on failure) — an ``async`` action until the end
of its awaiting, not only the call that creates its coroutine. Both leave the span out entirely
without ``opentelemetry-api`` (`stmtflow._otel.TRACER` is None), and build no log record's
fields unless the level is enabled, so an engine nobody watches pays for two checks per step.
The fields and levels are described in `stmtflow._log`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from stmtflow import _otel
from stmtflow._log import fields
from stmtflow.core._effects import describe
from stmtflow.dsl._context import StepKey

if TYPE_CHECKING:
    from stmtflow.runtime._unit import Unit

__all__ = ["observed_step", "observed_unit"]

_unit_log = logging.getLogger("stmtflow.unit")
_step_log = logging.getLogger("stmtflow.step")
_DEBUG = logging.DEBUG


@contextmanager
def observed_unit(unit: Unit) -> Iterator[None]:
    """Log and trace the unit of work ``unit`` runs inside the block."""
    rec = unit.rec
    if _unit_log.isEnabledFor(_DEBUG):
        _unit_log.debug(
            "unit start: %s (%s) at status %s",
            rec.id,
            rec.workflow,
            rec.status,
            extra=fields(rec.id, workflow=rec.workflow),
        )
    tracer = _otel.TRACER
    if tracer is None:
        yield
    else:
        attributes = {"stmtflow.instance": rec.id, "stmtflow.workflow": rec.workflow}
        with tracer.start_as_current_span(
            "stmtflow.unit",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except Exception as exc:
                _otel.error_status(span, exc)
                raise
            finally:
                span.set_attribute("stmtflow.status", unit.state.status.value)
    if _unit_log.isEnabledFor(_DEBUG):
        _unit_log.debug(
            "unit end: %s (%s) now %s",
            rec.id,
            rec.workflow,
            unit.state.status.value,
            extra=fields(rec.id, workflow=rec.workflow),
        )


def observed_step(fn: Callable[..., Any], step: StepKey, workflow: str) -> Callable[..., Any]:
    """``fn`` (a step action) logged and traced.

    An ``async`` action returns an awaitable that has not run yet: it is handed on wrapped, so
    its span stays open (and current) while it is awaited and ends with it, and its failure or
    completion is logged when the awaiting ends, as a sync action's is when it returns.
    """
    instance, thread_id, name, attempt, _ = step
    tracer = _otel.TRACER

    def _fields() -> dict[str, Any]:
        return fields(instance, workflow=workflow, thread_id=thread_id, step=name, attempt=attempt)

    def failed(span: Any, exc: Exception) -> None:
        if span is not None:
            _otel.error_status(span, exc)
            span.end()
        _step_log.warning(
            "step failed: %s/%s %s (attempt %d): %s",
            instance,
            thread_id,
            name,
            attempt,
            describe(exc),
            extra=_fields(),
        )

    def done(span: Any) -> None:
        if span is not None:
            span.end()
        if _step_log.isEnabledFor(_DEBUG):
            _step_log.debug(
                "step done: %s/%s %s (attempt %d)",
                instance,
                thread_id,
                name,
                attempt,
                extra=_fields(),
            )

    async def awaited(result: Awaitable[Any], span: Any) -> Any:
        try:
            if span is None:
                value = await result
            else:
                with _otel.current(span):
                    value = await result
        except Exception as exc:
            failed(span, exc)
            raise
        except BaseException:
            if span is not None:
                span.end()
            raise
        done(span)
        return value

    def action(*args: Any) -> Any:
        if _step_log.isEnabledFor(_DEBUG):
            _step_log.debug(
                "step start: %s/%s %s (attempt %d)",
                instance,
                thread_id,
                name,
                attempt,
                extra=_fields(),
            )
        span = None
        try:
            if tracer is None:
                result = fn(*args)
            else:
                span = tracer.start_span(
                    "stmtflow.step",
                    attributes={
                        "stmtflow.instance": instance,
                        "stmtflow.workflow": workflow,
                        "stmtflow.thread": thread_id,
                        "stmtflow.step": name,
                        "stmtflow.attempt": attempt,
                    },
                )
                with _otel.current(span):
                    result = fn(*args)
        except Exception as exc:
            failed(span, exc)
            raise
        except BaseException:
            if span is not None:
                span.end()
            raise
        if result is not None and inspect.isawaitable(result):
            return awaited(result, span)
        done(span)
        return result

    return action

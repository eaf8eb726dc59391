"""Logging and tracing: one ``stmtflow`` logger with structured fields (instance, thread, step,
attempt) at sensible levels, and OpenTelemetry spans per unit of work and per step action, with
error status on failure (the SDK's in-memory exporter); nothing of it without the package."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, StatusCode

import stmtflow as sf
from stmtflow import _otel

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Charge(sf.WorkflowState):
    tries: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", lambda: None),
            sf.Step("charge", self.charge, retry=sf.RetryPolicy(max_attempts=3)),
        )

    def charge(self) -> None:
        if sf.current_step().attempt == 1:
            raise TimeoutError("bank slow")


def _engine(now: list[datetime]) -> sf.Engine:
    return sf.Engine("memory://", [Charge], clock=lambda: now[0])


def test_records_come_from_the_stmtflow_logger_with_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [T0]
    with caplog.at_level(logging.DEBUG, logger="stmtflow"):
        engine = _engine(now)
        engine.start(Charge, id="c-1")
    records = [r for r in caplog.records if r.name.startswith("stmtflow")]
    assert {r.name for r in records} <= {"stmtflow.unit", "stmtflow.step"}
    steps = [
        (r.levelname, r.getMessage().split(":")[0], r.step, r.attempt)  # type: ignore[attr-defined]
        for r in records
        if r.name == "stmtflow.step"
    ]
    assert steps == [
        ("DEBUG", "step start", "reserve", 1),
        ("DEBUG", "step done", "reserve", 1),
        ("DEBUG", "step start", "charge", 1),
        ("WARNING", "step failed", "charge", 1),
    ]
    failed = next(r for r in records if r.levelname == "WARNING")
    assert (failed.instance, failed.thread_id, failed.workflow) == ("c-1", "_main_", "Charge")  # type: ignore[attr-defined]
    assert "TimeoutError: bank slow" in failed.getMessage()
    units = [r.getMessage() for r in records if r.name == "stmtflow.unit"]
    assert units == [
        "unit start: c-1 (Charge) at status resuming",
        "unit end: c-1 (Charge) now waiting",
    ]
    assert all(r.instance == "c-1" for r in records)  # type: ignore[attr-defined]


def test_only_warnings_at_the_default_level(caplog: pytest.LogCaptureFixture) -> None:
    now = [T0]
    with caplog.at_level(logging.WARNING, logger="stmtflow"):
        engine = _engine(now)
        engine.start(Charge, id="c-2")
        now[0] += timedelta(seconds=5)
        engine.tick()
    assert [(r.name, r.levelname, r.attempt) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("stmtflow.step", "WARNING", 1)
    ]


def test_a_failed_delivery_is_a_warning_with_fields(caplog: pytest.LogCaptureFixture) -> None:
    class Emit(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Step("tell", lambda: sf.emit("t", 1)))

    def down(message: sf.OutboxMessage) -> None:
        raise ConnectionError("no broker")

    with caplog.at_level(logging.WARNING, logger="stmtflow"):
        sf.Engine("memory://", [Emit], sinks=[down]).start(Emit, id="e-1")
    [record] = caplog.records
    assert record.name == "stmtflow.outbox" and record.levelname == "WARNING"
    assert (record.instance, record.step, record.attempt) == ("e-1", "tell", 1)  # type: ignore[attr-defined]
    assert "e-1/_main_/tell/1/0" in record.getMessage() and "no broker" in record.getMessage()


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(_otel, "TRACER", provider.get_tracer("stmtflow"))
    yield exporter
    provider.shutdown()


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def test_a_span_per_unit_and_per_step(spans: InMemorySpanExporter) -> None:
    now = [T0]
    engine = _engine(now)
    engine.start(Charge, id="c-3")
    now[0] += timedelta(seconds=5)
    engine.tick()
    finished = spans.get_finished_spans()
    steps = [s for s in finished if s.name == "stmtflow.step"]
    units = [s for s in finished if s.name == "stmtflow.unit"]
    assert [(_attrs(s)["stmtflow.step"], _attrs(s)["stmtflow.attempt"]) for s in steps] == [
        ("reserve", 1),
        ("charge", 1),
        ("charge", 2),
    ]
    assert all(
        _attrs(s)["stmtflow.instance"] == "c-3" and _attrs(s)["stmtflow.thread"] == "_main_"
        for s in steps
    )
    failed = steps[1]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "TimeoutError: bank slow"
    assert [e.name for e in failed.events] == ["exception"]
    assert steps[0].status.status_code is StatusCode.UNSET
    assert steps[2].status.status_code is StatusCode.UNSET
    assert len(units) == 2
    assert [_attrs(u)["stmtflow.status"] for u in units] == ["waiting", "finished"]
    # Each step span is a child of the unit it ran in.
    first_unit, second_unit = units
    assert [s.parent.span_id for s in steps if s.parent] == [
        first_unit.context.span_id,
        first_unit.context.span_id,
        second_unit.context.span_id,
    ]


def test_a_unit_that_raises_has_error_status(spans: InMemorySpanExporter) -> None:
    class Broken(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Step("boom", self.boom))

        def boom(self) -> None:
            raise ValueError("bad")

    engine = sf.Engine("memory://", [Broken], default_retry=None)
    with pytest.raises(sf.StepError):
        engine.start(Broken, id="b-1")
    [step, unit] = spans.get_finished_spans()
    assert step.status.status_code is StatusCode.ERROR
    assert unit.name == "stmtflow.unit" and unit.status.status_code is StatusCode.ERROR
    assert "StepError" in (unit.status.description or "")


def test_without_opentelemetry_there_are_no_spans() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if not installed
        import stmtflow as sf
        from stmtflow import _otel
        assert _otel.TRACER is None
        class Hello(sf.WorkflowState):
            def definition(self):
                return sf.S(sf.Step("hi", lambda: None))
        print(sf.Engine("memory://", [Hello]).start(Hello, id="h").status.value)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "finished"), done.stderr


# -- async steps: logged and traced until their awaiting ends ----------------------------------

SEEN_SPANS: list[Span] = []
"""The span current inside each run of `AsyncCharge.charge`."""


class AsyncCharge(sf.WorkflowState):
    """An ``async def`` step whose first attempt fails after an await."""

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("charge", self.charge, retry=sf.RetryPolicy(max_attempts=3)))

    async def charge(self) -> None:
        await asyncio.sleep(0)
        SEEN_SPANS.append(trace.get_current_span())
        if sf.current_step().attempt == 1:
            raise TimeoutError("bank slow")


def _run_async_charge(entry: str, id: str) -> None:
    """Start an `AsyncCharge` with ``entry`` (``engine.start`` or ``engine.astart``), then
    tick when its retry is due."""
    now = [T0]
    SEEN_SPANS.clear()
    with sf.Engine("memory://", [AsyncCharge], clock=lambda: now[0]) as engine:
        if entry == "start":
            engine.start(AsyncCharge, id=id)
        else:
            asyncio.run(engine.astart(AsyncCharge, id=id))
        now[0] += timedelta(seconds=5)
        engine.tick()
        assert engine.get(id).status is sf.WorkflowStatus.FINISHED


@pytest.mark.parametrize("entry", ["start", "astart"])
def test_a_failing_async_step_is_logged_like_a_sync_one(
    entry: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="stmtflow"):
        _run_async_charge(entry, "a-1")
    steps = [
        (r.levelname, r.getMessage().split(":")[0], r.attempt)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "stmtflow.step"
    ]
    assert steps == [
        ("DEBUG", "step start", 1),
        ("WARNING", "step failed", 1),  # when its awaiting raised, not when it was called
        ("DEBUG", "step start", 2),
        ("DEBUG", "step done", 2),
    ]
    failed = next(r for r in caplog.records if r.levelname == "WARNING")
    assert failed.name == "stmtflow.step"
    assert (failed.instance, failed.workflow, failed.thread_id, failed.step, failed.attempt) == (  # type: ignore[attr-defined]
        "a-1",
        "AsyncCharge",
        "_main_",
        "charge",
        1,
    )
    assert failed.getMessage() == (
        "step failed: a-1/_main_ charge (attempt 1): TimeoutError: bank slow"
    )


@pytest.mark.parametrize("entry", ["start", "astart"])
def test_a_failing_async_step_records_its_exception_on_its_span(
    entry: str, spans: InMemorySpanExporter
) -> None:
    _run_async_charge(entry, "a-2")
    finished = spans.get_finished_spans()
    steps = [s for s in finished if s.name == "stmtflow.step"]
    units = [s for s in finished if s.name == "stmtflow.unit"]
    assert [(_attrs(s)["stmtflow.step"], _attrs(s)["stmtflow.attempt"]) for s in steps] == [
        ("charge", 1),
        ("charge", 2),
    ]
    assert all(
        (_attrs(s)["stmtflow.instance"], _attrs(s)["stmtflow.workflow"]) == ("a-2", "AsyncCharge")
        and _attrs(s)["stmtflow.thread"] == "_main_"
        for s in steps
    )
    failed, retried = steps
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "TimeoutError: bank slow"
    [event] = failed.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.type"] == "TimeoutError"
    assert retried.status.status_code is StatusCode.UNSET and retried.events == ()
    # The span is the current one while the action's body runs, and a child of its unit's.
    assert [s.get_span_context().span_id for s in SEEN_SPANS] == [s.context.span_id for s in steps]
    assert [s.parent.span_id for s in steps if s.parent] == [u.context.span_id for u in units]

"""Logging and tracing: one ``stmtflow`` logger with structured fields (instance, thread, step,
attempt) at sensible levels, and OpenTelemetry spans per unit of work and per step action, with
error status on failure (the SDK's in-memory exporter); nothing of it without the package."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

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

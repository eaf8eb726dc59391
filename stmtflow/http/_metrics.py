"""``GET /metrics``: the service in Prometheus text format.

Read from the store at each scrape: instances by workflow type and status
(``stmtflow_instances``), the due backlog (``stmtflow_due_instances``: instances whose wake-up
time has passed, what workers have yet to pick up) and the questions waiting for people
(``stmtflow_pending_inputs``). Counted by this process since it started: the units of work
its routes ran, by kind (``stmtflow_units_total``), and those that ended in an error of the
workflow or the engine (``stmtflow_unit_failures_total``; a refused request is no failure).

The instance gauge is the store's count by type and status (`Store.count_instances`): one
``GROUP BY`` on SQLite and PostgreSQL, no record read; the Redis and NATS stores list every
record's type and status for it, so there a scrape's cost grows with the store.

Example:
    >>> from stmtflow import Engine
    >>> from stmtflow.http._api import Counters
    >>> text = render(Engine("memory://"), Counters()).decode()
    >>> "stmtflow_due_instances 0.0" in text
    True
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stmtflow.http._api import Counters
from stmtflow.runtime import Engine

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Collector(Collector):
    def __init__(self, engine: Engine, counters: Counters) -> None:
        self.engine = engine
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        by = engine.store.count_instances()
        instances = GaugeMetricFamily(
            "stmtflow_instances", "Stored instances", labels=["workflow", "status"]
        )
        for (workflow, status), count in sorted(by.items()):
            instances.add_metric([workflow, status], count)
        yield instances
        yield GaugeMetricFamily(
            "stmtflow_due_instances",
            "Instances due now (timers, retries, crashed work)",
            value=engine.due_count(),
        )
        yield GaugeMetricFamily(
            "stmtflow_pending_inputs", "Questions waiting for people", value=len(engine.inputs())
        )
        units = CounterMetricFamily(
            "stmtflow_units", "Units of work run by this service", labels=["kind"]
        )
        failures = CounterMetricFamily(
            "stmtflow_unit_failures", "Units of work that ended in an error", labels=["kind"]
        )
        for kind in sorted(self.counters.units):
            units.add_metric([kind], self.counters.units[kind])
            failures.add_metric([kind], self.counters.failures.get(kind, 0))
        yield units
        yield failures


def render(engine: Engine, counters: Counters) -> bytes:
    """The metrics text (blocking: run it in a thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(engine, counters))
    return generate_latest(registry)

"""A YAML pipeline (examples/dag_pipeline.yaml) with a fallback and a compensation, on SQLite.

`stmtflow.dag.load` turns the file into a workflow class, ``SalesReport``; the handlers below
are plain functions, each called with ``inputs``: the run's input under ``"input"`` and the
output of every step it depends on under that step's id. Two nights run:

- ``night-1``: the live exchange-rate API is down. Its two attempts fail, so its ``fallback``
  (yesterday's cached rates) gives the ``rates`` step its output; the report is built from
  that, published, and the team is told.
- ``night-2``: the chat service refuses the message for good. ``notify`` has no fallback, so
  the run fails and the completed steps with a ``compensate`` are undone, latest first: the
  published report is taken down again.

Run it (the SQLite file goes into the folder given, or a fresh temporary one):

    python examples/dag_pipeline.py [FOLDER]
    stmtflow graph examples/dag_pipeline.py:SalesReport
    stmtflow dag validate examples/dag_pipeline.yaml --handlers examples/dag_pipeline.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import stmtflow as sf
from stmtflow import dag

SALES = {"night-1": [120.0, 80.0], "night-2": [50.0]}
PUBLISHED: dict[str, str] = {}  # report id → text: what the company wiki shows


def fetch_sales(inputs: dict[str, Any]) -> list[float]:
    return SALES[inputs["input"]["night"]]


def live_rates(inputs: dict[str, Any]) -> dict[str, float]:
    raise ConnectionError("rates API: 503 Service Unavailable")


def cached_rates(inputs: dict[str, Any]) -> dict[str, float]:
    print("  rates: live API down, using yesterday's cached rates")
    return {"usd_eur": 0.9}


def build_report(inputs: dict[str, Any]) -> dict[str, Any]:
    total = sum(inputs["sales"]) * inputs["rates"]["usd_eur"]
    return {"night": inputs["input"]["night"], "total_eur": round(total, 2)}


def publish(inputs: dict[str, Any]) -> str:
    report = inputs["report"]
    PUBLISHED[report["night"]] = f"{report['night']}: {report['total_eur']} EUR"
    print(f"  published {PUBLISHED[report['night']]}")
    return report["night"]


def unpublish(inputs: dict[str, Any]) -> None:
    print(f"  took down the report of {inputs['publish']}")
    PUBLISHED.pop(inputs["publish"], None)


def notify(inputs: dict[str, Any]) -> str:
    if inputs["input"].get("chat_down"):
        raise PermissionError("chat: the bot was removed from #sales")
    return f"told #sales about {inputs['publish']}"


SalesReport = dag.load(
    Path(__file__).with_name("dag_pipeline.yaml"), handlers=sys.modules[__name__]
)


def run(engine: sf.Engine, night: str, **extra: Any) -> None:
    print(f"{night}:")
    inst = engine.start(SalesReport, {"input": {"night": night, **extra}}, id=night)
    while inst.status is sf.WorkflowStatus.WAITING:  # only retries to wait for: wait them out
        time.sleep(0.05)
        engine.tick()
        inst = engine.get(night)
    data: Any = inst.data
    print(f"  -> {inst.status.value}; outputs: {data.outputs}")
    if inst.error:
        print(f"  error: {inst.error}")
        print(f"  compensated: {', '.join(c.step for c in inst.state.compensated)}")


def main(folder: Path) -> None:
    with sf.Engine(f"sqlite:///{folder / 'reports.db'}", [SalesReport]) as engine:
        run(engine, "night-1")
        run(engine, "night-2", chat_down=True)
    print(f"on the wiki: {', '.join(PUBLISHED.values()) or 'nothing'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))

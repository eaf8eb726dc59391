"""The nightly sales report of examples/nightly_report: gather, render, publish to Redis.

Each night at 02:30 Paris time the schedule ``nightly-report`` starts one `NightlyReport`
(instance ``nightly-report@<fire time in UTC>``). Its steps:

- ``gather`` sums the night's sales (fixed figures here, from the fire's date);
- ``render`` writes the report's text; its first attempt fails ("the template service is
  warming up"), so the instance waits for a retry a second later, which a worker runs;
- ``publish`` calls ``sf.emit("reports.nightly", {...})``: the message is committed with the
  step's checkpoint and delivered by the engine's sink (``stmtflow --sink
  'redis://...?stream=NAME' worker``) to a Redis stream.

``run.sh`` beside this file drives it with the command line; README.md walks through it.
"""

from __future__ import annotations

from datetime import timedelta

import stmtflow as sf


class NightlyReport(sf.WorkflowState):
    """One night's sales report."""

    region: str = "EU"
    night: str = ""
    """The date the report is about (from the instance id: ``NAME@YYYY-MM-DDT...``)."""
    total: int = 0
    text: str = ""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("gather", self.gather),
            sf.Step(
                "render",
                self.render,
                retry=sf.RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=1)),
            ),
            sf.Step("publish", self.publish),
        )

    def gather(self) -> None:
        self.night = sf.current_step().workflow_id.partition("@")[2][:10]
        self.total = 1000 + sum(int(c) for c in self.night if c.isdigit()) * 10

    def render(self) -> None:
        if sf.current_step().attempt == 1:
            raise ConnectionError("the template service is warming up")
        self.text = f"{self.region} sales on {self.night}: {self.total} EUR"

    def publish(self) -> None:
        sf.emit("reports.nightly", {"night": self.night, "region": self.region, "text": self.text})

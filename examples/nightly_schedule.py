"""A nightly sales report, started by a schedule at 02:30 Paris time.

What it shows:

- ``engine.schedule(name, workflow, cron, timezone=..., overlap=..., catchup=...)``: every
  fire of the cron expression, read in local time, starts one instance whose id is the
  schedule's name and the fire time in UTC (``nightly-sales@2026-03-28T01:30:00Z``);
- the worker fires due schedules in its ``tick``: here a fake clock walks over a weekend with
  a daylight-saving change (29 March 2026: Paris moves from UTC+1 to UTC+2), so the UTC time of
  the fire moves while the local time stays 02:30 -- and on the night whose 02:30 does not
  exist, the report runs at 03:00, the first minute after the gap;
- a worker that was down for a night catches the missed fire up when it is within
  ``catchup``; ``engine.backfill`` starts older ones on request, and a fire that already ran is
  never started twice (its id is taken);
- ``pause_schedule`` / ``resume_schedule`` / ``trigger`` / ``unschedule``.

Run it with

    python examples/nightly_schedule.py [FOLDER]

(the SQLite file goes to FOLDER, default a fresh temporary folder). From a shell the same is
``stmtflow schedule add nightly-sales examples/nightly_schedule.py:SalesReport '30 2 * * *'
--timezone Europe/Paris --catchup 6h`` and a running ``stmtflow worker``.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import stmtflow as sf

PARIS = ZoneInfo("Europe/Paris")


class SalesReport(sf.WorkflowState):
    """Sum yesterday's sales and mail the figure."""

    region: str = "EU"
    total: int = 0
    sent_to: str = ""

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("sum", self.sum), sf.Step("mail", self.mail))

    def sum(self) -> None:
        self.total = 1234 if self.region == "EU" else 99

    def mail(self) -> None:
        self.sent_to = "sales@example.com"


class Clock:
    """The example's fake time (an engine reads its clock for every fire and unit)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def night(engine: sf.Engine, clock: Clock, local: datetime) -> None:
    """Let the worker tick at ``local`` (Paris time) and print what it started."""
    clock.now = local.replace(tzinfo=PARIS).astimezone(UTC)
    before = {i.id for i in engine.list()}
    engine.tick()
    started = [i for i in engine.list() if i.id not in before]
    what = ", ".join(f"{i.id} (total {i.data.total})" for i in started) or "nothing"
    print(f"  {local:%a %d %b %H:%M} Paris: started {what}")


def main(folder: Path) -> None:
    clock = Clock(datetime(2026, 3, 26, 12, 0, tzinfo=UTC))
    db = f"sqlite:///{folder / 'nightly.db'}"
    with sf.Engine(db, workflows=[SalesReport], clock=clock) as engine:
        s = engine.schedule(
            "nightly-sales",
            SalesReport,
            "30 2 * * *",
            input={"region": "EU"},
            timezone="Europe/Paris",
            catchup=timedelta(hours=6),
        )
        print(f"scheduled {s.name}: '{s.cron}' in {s.timezone}, next {s.next_fire:%Y-%m-%d %H:%M}Z")

        print("three nights, across the change to summer time:")
        night(engine, clock, datetime(2026, 3, 27, 2, 30, 5))
        night(engine, clock, datetime(2026, 3, 28, 2, 30, 5))
        night(engine, clock, datetime(2026, 3, 29, 3, 0, 5))  # 02:30 does not exist that night

        print("the worker was down on the night of the 30th and comes back at 07:00:")
        night(engine, clock, datetime(2026, 3, 30, 7, 0))

        print("a backfill of the week before (the nights already run are not run again):")
        before = len(engine.list())
        ids = engine.backfill(
            "nightly-sales",
            datetime(2026, 3, 23, tzinfo=PARIS),
            datetime(2026, 3, 29, tzinfo=PARIS),
        )
        new = len(engine.list()) - before
        print(f"  {len(ids)} fires from {ids[0]} to {ids[-1]}: {new} new reports")

        engine.pause_schedule("nightly-sales")
        print("paused for a night:")
        night(engine, clock, datetime(2026, 3, 31, 2, 30, 5))
        engine.resume_schedule("nightly-sales")
        extra = engine.trigger("nightly-sales")
        print(
            f"triggered by hand: {extra.id} ({extra.status.value}, mailed to {extra.data.sent_to})"
        )
        engine.unschedule("nightly-sales")
        print(f"schedules left: {engine.schedules()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="stmtflow-")))

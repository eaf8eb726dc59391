"""Sending a notice to many subscribers, at most three at a time: ``ForEach`` with a bound.

What it shows:

- ``ForEach("notify", items, body, max_concurrency=3)`` starts one thread per subscriber, never
  more than three alive at once; each next subscriber starts as soon as one finishes;
- each thread's body is built from its own item (``body(item) -> Section``): a step sends the
  message, a ``Sleep`` waits for the provider's rate limit, a step records the delivery;
- the item lives on its own thread (``Thread.arg``) and the subscribers not started yet on the
  main thread; a finished subscriber leaves nothing behind in the state;
- the engine over a SQLite file: a fresh engine (another process, in spirit) picks up the work
  from the stored JSON and finishes it.

Run it with

    python examples/notification_fanout.py [FOLDER]

(the SQLite file goes to FOLDER, default a fresh temporary folder).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import stmtflow as sf

SUBSCRIBERS = ["ada", "grace", "alan", "edsger", "barbara", "ken", "dennis"]


class Notice(sf.WorkflowState):
    subject: str
    subscribers: list[str]
    sent: list[str] = []
    delivered: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.ForEach("notify", lambda: self.subscribers, self.notify, max_concurrency=3),
            sf.Step("report", self.report),
        )

    def notify(self, who: str) -> sf.Section:
        """The body of one subscriber's thread, built from the subscriber's name."""
        return sf.S(
            sf.Step("send", lambda: self.sent.append(who)),
            sf.Sleep("rate_limit", timedelta(seconds=1)),
            sf.Step("record", lambda: self.delivered.append(who)),
        )

    def report(self) -> None:
        print(f"{self.subject!r} delivered to {len(self.delivered)}: {', '.join(self.delivered)}")


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    url = f"sqlite:///{folder / 'notices.db'}"
    with sf.Engine(url, workflows=[Notice]) as engine:
        inst = engine.start(
            Notice, {"subject": "Release 1.0", "subscribers": SUBSCRIBERS}, id="n-1"
        )
        alive = [t.id for t in inst.state.threads if t.group == "notify"]
        print(f"started: {', '.join(alive)} (sent so far: {', '.join(inst.data.sent)})")
    clock = datetime.now(UTC)
    while True:
        # A fresh engine each round: everything it needs is in the SQLite file.
        with sf.Engine(url, workflows=[Notice]) as engine:
            clock += timedelta(seconds=1)
            engine.tick(now=clock)
            inst = engine.get("n-1")
            alive = [t.id for t in inst.state.threads if t.group == "notify"]
            assert len(alive) <= 3
            if inst.status is sf.WorkflowStatus.FINISHED:
                break
            print(f"alive: {', '.join(alive)}")
    assert sorted(inst.data.delivered) == sorted(SUBSCRIBERS)
    print(
        f"finished: every subscriber notified once; state threads left: {len(inst.state.threads)}"
    )


if __name__ == "__main__":
    main()

"""Workflows kept in Redis: two workers share the work, a third party sends the callbacks.

Each `Shipment` packs, waits for the carrier's ``picked_up`` event, then notifies the customer.
Two engine workers (threads here; processes or machines in production) claim due work from the
same Redis database under leases with fencing tokens, so no step runs twice, while the main
thread plays the carrier and delivers ``picked_up`` to each shipment as soon as it waits for it.

Needs ``pip install 'stmtflow[redis]'`` and a Redis server. Run it:

    python examples/redis_store.py [redis://127.0.0.1:6379/0]

Its keys start with ``example-shipments:`` (the URL's ``prefix``); they are deleted when it
starts and when it ends.
For durable workflows run Redis with ``appendonly yes`` and ``appendfsync always``
(docs/stores.md, "Redis").
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from datetime import timedelta

import stmtflow as sf
from stmtflow.errors import ConflictError, UnknownCallback

PREFIX = "example-shipments"
ran: Counter[str] = Counter()
lock = threading.Lock()


class Shipment(sf.WorkflowState):
    parcel: str
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Sleep("queued", timedelta(0)),  # start() stores it; a worker picks it up
            sf.Step("pack", lambda: self.note(f"packed {self.parcel}")),
            sf.Wait("carrier", sf.OnEvent("picked_up", self.on_picked_up)),
            sf.Step("notify", lambda: self.note(f"told the customer about {self.parcel}")),
        )

    def note(self, what: str) -> None:
        with lock:
            ran[f"{sf.current_step().step}:{self.parcel}"] += 1
        self.log.append(what)

    def on_picked_up(self, carrier: str) -> str:
        self.log.append(f"picked up by {carrier}")
        return "ok"


def main() -> None:
    server = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
    url = f"{server}{'&' if '?' in server else '?'}prefix={PREFIX}"
    cleanup(server)  # what an interrupted earlier run left
    engine = sf.Engine(url, workflows=[Shipment], lease=timedelta(seconds=10))
    ids = [f"ship-{n}" for n in range(6)]
    for n, id in enumerate(ids):
        engine.start(Shipment, {"parcel": f"parcel {n}"}, id=id)
    stop = threading.Event()
    workers = [
        threading.Thread(
            target=sf.Engine(url, workflows=[Shipment], owner=f"worker-{n}").run_worker,
            kwargs={"stop": stop, "poll_interval": 0.02},
        )
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    waiting = set(ids)
    while waiting:  # the carrier: deliver the event to each shipment once it waits for it
        for id in sorted(waiting):
            try:
                engine.send(id, "picked_up", "Parcel Express")
                waiting.discard(id)
            except (UnknownCallback, ConflictError):
                pass  # not waiting yet, or a worker holds it right now: try again
        time.sleep(0.02)
    while any(engine.get(id).status is not sf.WorkflowStatus.FINISHED for id in ids):
        time.sleep(0.02)
    stop.set()
    for worker in workers:
        worker.join()
    for inst in engine.list(workflow="Shipment"):
        print(f"{inst.id}: {inst.status.value}: {'; '.join(inst.data.log)}")  # type: ignore[attr-defined]
    print(f"steps run: {sum(ran.values())}, each once: {set(ran.values()) == {1}}")
    cleanup(server)
    engine.close()


def cleanup(server: str) -> None:
    """Delete this example's keys (a maintenance scan, not something a store does)."""
    import redis

    with redis.Redis.from_url(server.split("?")[0]) as client:
        keys = list(client.scan_iter(match=f"{PREFIX}:*"))
        if keys:
            client.delete(*keys)


if __name__ == "__main__":
    main()

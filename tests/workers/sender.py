"""Deliver ``pong`` to every `flows.Relay` instance: ``python sender.py STORE_URL ID...``.

Runs beside the workers: each ``Engine.send`` races the workers' timers on the same instance.
An instance not waiting for ``pong`` yet (``UnknownCallback``), not created yet (``NotFound``)
or leased by a worker for longer than ``send`` waits (``ConflictError``) is tried again in the
next round. After an error other than "not ready yet", the instance is read first: if its
``reply`` is set, the callback was delivered by the attempt that raised (the error came later in
that unit) and it is not sent again. Prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import timedelta

import flows

from stmtflow.errors import ConflictError, NotFound, StmtflowError, UnknownCallback
from stmtflow.runtime import Engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", help="the store URL")
    parser.add_argument("ids", nargs="+", help="instance ids")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after seconds")
    args = parser.parse_args()
    engine = Engine(
        args.url,
        workflows=flows.WORKFLOWS,
        lease=timedelta(seconds=5),
        owner=f"sender:{os.getpid()}",
    )
    started = time.monotonic()
    todo = list(args.ids)
    random.Random(0).shuffle(todo)  # not in creation order: some are not created yet
    outputs: dict[str, str] = {}
    recheck: set[str] = set()
    counts = {"attempts": 0, "not_ready": 0, "conflicts": 0, "other_errors": 0, "recovered": 0}
    errors: list[str] = []
    while todo and time.monotonic() - started < args.timeout:
        waiting: list[str] = []
        for id in todo:
            if id in recheck:
                recheck.discard(id)
                if engine.get(id).data.reply is not None:  # type: ignore[attr-defined]
                    counts["recovered"] += 1
                    continue
            counts["attempts"] += 1
            try:
                outputs[id] = engine.send(id, "pong", f"pong-{id}")
            except (UnknownCallback, NotFound):
                counts["not_ready"] += 1
                waiting.append(id)
            except ConflictError:
                counts["conflicts"] += 1
                recheck.add(id)
                waiting.append(id)
            except StmtflowError as exc:
                counts["other_errors"] += 1
                errors.append(f"{id}: {type(exc).__name__}: {exc}")
                recheck.add(id)
                waiting.append(id)
        if len(waiting) == len(todo):
            time.sleep(0.05)
        todo = waiting
    engine.close()
    summary = {
        "pid": os.getpid(),
        "outputs": outputs,
        "undelivered": todo,
        "errors": errors[:20],
        "seconds": round(time.monotonic() - started, 3),
        **counts,
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

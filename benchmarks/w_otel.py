"""The cost of tracing on W1(b): the engine without ``opentelemetry-api``, with it installed
but no tracer provider configured (the API's no-op spans), and with the SDK recording spans.

Each mode runs in a process of its own (the import is tried once, at ``import stmtflow``); the
modes take turns, ``--rounds`` times, so disk noise hits them alike. Per mode: µs per step of
W1 (N steps of a ``For`` loop) through the engine on SQLite with a durable commit per step
(W1(b)), and on the memory store (the library's own CPU cost, without the disk).

    python -m benchmarks.w_otel [--steps 1000] [--rounds 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

MODES = ("absent", "api, no provider", "sdk, recording")

_CHILD = """
import json, sys
mode, workdir, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "absent":
    sys.modules["opentelemetry"] = None  # as if not installed
if mode == "sdk, recording":
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())  # spans are recorded, then dropped
from stmtflow import _otel
assert (_otel.TRACER is None) == (mode == "absent")
from benchmarks.w1_sequential import _engine_per_step
from stmtflow.stores import open_store
out = {}
for name, url in (("sqlite", f"sqlite:///{workdir}/otel.db"), ("memory", "memory://")):
    store = open_store(url)
    _engine_per_step(store, steps)  # warm-up
    out[name] = [_engine_per_step(store, steps) for _ in range(3)]
    store.close()
print(json.dumps(out))
"""


def _sample(mode: str, workdir: Path, steps: int) -> dict[str, list[float]]:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(workdir), str(steps)],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, list[float]] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.w_otel")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stmtflow-otel-"))
    samples: dict[str, dict[str, list[float]]] = {m: {"sqlite": [], "memory": []} for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            for store, values in _sample(mode, workdir, args.steps).items():
                samples[mode][store] += values
    base = {store: median(samples["absent"][store]) for store in ("sqlite", "memory")}
    print(f"W1 through the engine, N={args.steps}, {args.rounds} x 3 runs per mode (median)")
    print(f"{'mode':<20} {'W1(b) SQLite µs/step':>22} {'vs absent':>10} {'memory µs/step':>16}")
    for mode in MODES:
        sqlite, memory = median(samples[mode]["sqlite"]), median(samples[mode]["memory"])
        print(
            f"{mode:<20} {sqlite:>22.1f} {sqlite / base['sqlite']:>9.3f}x "
            f"{memory:>12.1f} ({memory - base['memory']:+.1f})"
        )


if __name__ == "__main__":
    main()

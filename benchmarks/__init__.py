"""Reproducible performance runs for stmtflow (issue 4): ``python -m benchmarks``.

Workloads W1-W6 keep the exact shapes of the issue, so their figures can be compared with other
workflow libraries on the same machine; ``docs/performance.md`` has the method and the results.

    python -m benchmarks                    # everything, a few minutes on 2 cores
    python -m benchmarks --quick            # smoke run (< 60 s), what CI runs
    python -m benchmarks --only W1,W3 --json out.json
"""

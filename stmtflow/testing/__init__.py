"""Testing kit: drive workflows in memory with a fake clock, and assert on snapshot files.

The ``snapshot`` pytest fixture comes with stmtflow's pytest plugin (loaded automatically);
``docs/testing.md`` has a full example test.

Example:
    >>> import stmtflow as sf
    >>> from stmtflow.testing import WorkflowHarness
    >>> class Hello(sf.WorkflowState):
    ...     def definition(self) -> sf.Section:
    ...         return sf.S(sf.Step("hello", lambda: None))
    >>> WorkflowHarness(Hello).start().log
    ['hello']
"""

from stmtflow.testing.harness import (
    DEFAULT_START,
    HarnessError,
    PendingEvent,
    StepRun,
    WorkflowHarness,
)
from stmtflow.testing.snapshots import (
    Snapshot,
    SnapshotMismatch,
    SnapshotMissing,
    assert_snapshot,
    snapshot_text,
)

__all__ = [
    "DEFAULT_START",
    "HarnessError",
    "PendingEvent",
    "Snapshot",
    "SnapshotMismatch",
    "SnapshotMissing",
    "StepRun",
    "WorkflowHarness",
    "assert_snapshot",
    "snapshot_text",
]

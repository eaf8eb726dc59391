"""The stmtflow pytest plugin: the ``snapshot`` fixture and the ``--snapshot-update`` option.

Installed with stmtflow and loaded by pytest through the ``pytest11`` entry point, so a test
needs no import to use it:

```python
def test_definition(snapshot):
    snapshot(sf.definition_json(Order().definition()), "order_definition")
```

Files go to ``snapshots/<test_module>/`` beside the test module. ``pytest --snapshot-update``
writes every snapshot the run compares (only those that changed) and lists them at the end.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from stmtflow.testing import snapshots
from stmtflow.testing.snapshots import Snapshot

__all__ = ["pytest_addoption", "pytest_configure", "pytest_unconfigure", "snapshot"]

_written = pytest.StashKey[list[Path]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--snapshot-update``."""
    group = parser.getgroup("stmtflow")
    group.addoption(
        "--snapshot-update",
        action="store_true",
        default=False,
        help="write snapshot files instead of comparing with them (stmtflow snapshot fixture)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Make plain `assert_snapshot` calls follow ``--snapshot-update`` during this run."""
    snapshots._update_default.append(bool(config.getoption("snapshot_update", False)))
    config.stash[_written] = []


def pytest_unconfigure(config: pytest.Config) -> None:
    """Undo `pytest_configure`."""
    if snapshots._update_default:
        snapshots._update_default.pop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the snapshot files this run wrote."""
    config = terminalreporter.config
    written = config.stash.get(_written, [])
    if written:
        terminalreporter.section("stmtflow snapshots")
        terminalreporter.write_line(f"wrote {len(written)} snapshot file(s):")
        for path in written:
            shown = (
                path.relative_to(config.rootpath) if path.is_relative_to(config.rootpath) else path
            )
            terminalreporter.write_line(f"  {shown}")


@pytest.fixture
def snapshot(request: pytest.FixtureRequest) -> Generator[Snapshot, None, None]:
    """Compare values with files under ``snapshots/<test_module>/``: ``snapshot(value, name)``.

    Without a name the test's name is used (``<test>_2``, ``<test>_3``... for later calls).
    """
    module = request.path
    snap = Snapshot(
        module.parent / "snapshots" / module.stem,
        update=bool(request.config.getoption("snapshot_update")),
        default_name=request.node.name,
    )
    yield snap
    request.config.stash.setdefault(_written, []).extend(snap.written)

"""The golden files under ``tests/snapshots``, compared by the snapshot assertion users get.

One mechanism for the project and its users: `stmtflow.testing.Snapshot`. A mismatch fails
with a unified diff; ``python -m pytest --snapshot-update`` (or ``STMTFLOW_UPDATE_SNAPSHOTS=1``)
rewrites the files, then review them with ``git diff tests/snapshots``. JSON is written here
with its keys in the order the library gives them (``definition_json`` puts ``type`` first),
so it is handed over as text.

Example:
    assert_snapshot(to_mermaid(definition), "diagrams/order.mmd")
    assert_json_snapshot(definition_json(definition), "definitions/order.json")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stmtflow.testing import Snapshot

GOLDEN = Snapshot(Path(__file__).parent / "snapshots")


def assert_snapshot(text: str, name: str) -> None:
    """Fail with a diff unless ``text`` equals the file ``tests/snapshots/<name>``."""
    __tracebackhide__ = True
    GOLDEN(text, name)


def assert_json_snapshot(data: Any, name: str) -> None:
    """`assert_snapshot` on ``data`` as indented JSON (keys in their given order)."""
    __tracebackhide__ = True
    GOLDEN(json.dumps(data, indent=2, ensure_ascii=False) + "\n", name)

"""Golden-file snapshots: compare text with a file under ``tests/snapshots``.

A mismatch fails with a unified diff. To accept the new output, run the tests with
``STMTFLOW_UPDATE_SNAPSHOTS=1`` (the files are rewritten and the tests pass), then review the
change with ``git diff tests/snapshots``.

Example:
    assert_snapshot(to_mermaid(definition), "diagrams/order.mmd")
    assert_json_snapshot(definition_json(definition), "definitions/order.json")
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import pytest

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE_VARIABLE = "STMTFLOW_UPDATE_SNAPSHOTS"


def updating() -> bool:
    """True when snapshots are being rewritten (``STMTFLOW_UPDATE_SNAPSHOTS=1``)."""
    return os.environ.get(UPDATE_VARIABLE, "") not in ("", "0")


def assert_snapshot(actual: str, name: str) -> None:
    """Fail with a diff unless ``actual`` equals the file ``tests/snapshots/<name>``."""
    path = SNAPSHOTS / name
    if updating():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != actual:
            path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"no snapshot {name}; create it with {UPDATE_VARIABLE}=1", pytrace=False)
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"snapshots/{name}",
            tofile="actual",
        )
        pytest.fail(
            f"output differs from snapshot {name} (accept with {UPDATE_VARIABLE}=1):\n"
            + "".join(diff),
            pytrace=False,
        )


def assert_json_snapshot(data: Any, name: str) -> None:
    """`assert_snapshot` on ``data`` as indented JSON (keys in their given order)."""
    assert_snapshot(json.dumps(data, indent=2, ensure_ascii=False) + "\n", name)

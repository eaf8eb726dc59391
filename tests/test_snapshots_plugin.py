"""The ``snapshot`` fixture from stmtflow's pytest plugin, run in throwaway test projects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import stmtflow as sf
from stmtflow.testing import Snapshot, SnapshotMismatch, SnapshotMissing, snapshot_text
from stmtflow.testing import snapshots as snapshots_module

pytest_plugins = ["pytester"]

TEST_FILE = """
import stmtflow as sf

class Hello(sf.WorkflowState):
    greeting: str = "hi"

    def definition(self):
        return sf.S(sf.Step("hello", lambda: None))

def test_definition(snapshot):
    snapshot(sf.definition_json(Hello().definition()), "definition")

def test_data(snapshot):
    snapshot(Hello(greeting=GREETING))
"""


def write_test(pytester: pytest.Pytester, greeting: str = "hi") -> None:
    pytester.makepyfile(test_hello=f"GREETING = {greeting!r}\n" + TEST_FILE)


def snapshot_dir(pytester: pytest.Pytester) -> Path:
    return pytester.path / "snapshots" / "test_hello"


def test_a_missing_snapshot_says_how_to_create_it(pytester: pytest.Pytester) -> None:
    write_test(pytester)
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*SnapshotMissing: snapshot 'definition' does not exist yet: *definition.json",
            "*Run pytest with --snapshot-update to create it*",
        ]
    )


def test_update_writes_pretty_sorted_json_then_runs_pass(pytester: pytest.Pytester) -> None:
    write_test(pytester)
    result = pytester.runpytest("--snapshot-update")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*wrote 2 snapshot file(s)*"])

    written = sorted(p.name for p in snapshot_dir(pytester).iterdir())
    assert written == ["definition.json", "test_data.json"]
    text = (snapshot_dir(pytester) / "definition.json").read_text()
    assert json.loads(text)["body"][0] == {"name": "hello", "retry": None, "type": "Step"}
    assert text.startswith('{\n  "body": [')

    pytester.runpytest().assert_outcomes(passed=2)


def test_a_mismatch_shows_a_unified_diff(pytester: pytest.Pytester) -> None:
    write_test(pytester)
    pytester.runpytest("--snapshot-update").assert_outcomes(passed=2)
    write_test(pytester, greeting="hello")

    result = pytester.runpytest()

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*SnapshotMismatch: snapshot 'test_data' differs from *test_data.json:",
            "*test_data.json (snapshot)",
            "*+++ actual",
            '*-  "greeting": "hi"',
            '*+  "greeting": "hello"',
            "*--snapshot-update to accept*",
        ]
    )


def test_the_option_is_listed_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--snapshot-update*"])


# -- the same machinery used directly -----------------------------------------------------------


def test_snapshot_text_of_models_and_text() -> None:
    state = sf.new_state("o-1", "Order")
    data = json.loads(snapshot_text(state))
    assert data == json.loads(state.model_dump_json())
    assert snapshot_text({"when": datetime(2024, 1, 1, tzinfo=UTC)}) == (
        '{\n  "when": "2024-01-01T00:00:00Z"\n}\n'
    )
    assert snapshot_text("flowchart TD") == "flowchart TD\n"


def test_snapshot_object(tmp_path: Path) -> None:
    snap = Snapshot(tmp_path, update=False, default_name="test_x[a/b]")
    with pytest.raises(SnapshotMissing):
        snap({"a": 1})
    snap.update = True
    assert snap({"a": 1}).name == "test_x_a_b_2.json"
    assert snap("graph", "diagram.mmd").name == "diagram.mmd"
    snap.update = False
    snap("graph", "diagram.mmd")
    with pytest.raises(SnapshotMismatch, match="-graph"):
        snap("chart", "diagram.mmd")
    with pytest.raises(ValueError, match=r"\.\."):
        snap({}, "../escape")


def test_assert_snapshot_defaults_beside_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(snapshots_module.UPDATE_ENV, "1")
    path = snapshots_module.assert_snapshot({"x": 1}, "plain", directory=tmp_path)
    assert path == tmp_path / "plain.json"
    monkeypatch.delenv(snapshots_module.UPDATE_ENV)
    snapshots_module.assert_snapshot({"x": 1}, "plain", directory=tmp_path)
    expected = Path(__file__).parent / "snapshots" / Path(__file__).stem / "nothing.json"
    with pytest.raises(SnapshotMissing, match=str(expected)):
        snapshots_module.assert_snapshot({}, "nothing", update=False)

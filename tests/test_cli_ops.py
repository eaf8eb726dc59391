"""``stmtflow history``, ``rewind``, ``fork``, ``prune`` and ``stuck`` (docs/cli.md)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from stmtflow.cli import cli
from stmtflow.stores import open_store

FLOW = """
from datetime import timedelta
import stmtflow as sf

class Order(sf.WorkflowState):
    reserved: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("reserve", self.reserve),
            sf.Step("charge", self.charge, retry=sf.RetryPolicy(initial_interval=timedelta(0))),
            sf.Wait("payment", sf.OnEvent("paid", lambda amount: None)),
        )

    def reserve(self) -> None:
        self.reserved += 1

    def charge(self) -> None:
        if sf.current_step().attempt == 1:
            raise RuntimeError("card declined")
"""


@pytest.fixture
def db(tmp_path: Path) -> str:
    (tmp_path / "flow.py").write_text(FLOW)
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    ok(url, "run", f"{tmp_path / 'flow.py'}:Order", "--id", "o-1")
    return url


def invoke(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db, *args])


def ok(db: str, *args: str) -> Result:
    result = invoke(db, *args)
    assert result.exit_code == 0, result.output + result.stderr
    return result


def stored(url: str) -> list[Any]:
    with open_store(url) as store:
        return [dataclasses.replace(r, fence=0) for r in store.list()]


def test_history_prints_a_timeline_with_relative_times_attempts_and_errors(db: str) -> None:
    out = ok(db, "history", "o-1").output.splitlines()
    assert out[0] == "o-1 (Order, waiting): 4 events"
    rows = [line.split() for line in out[3:]]
    assert [r[2] for r in rows] == [
        "started",
        "step_completed",
        "retry_scheduled",
        "step_completed",
    ]
    assert rows[0][:2] == ["1*", "+0.000s"]
    assert all(re.fullmatch(r"\+\d+\.\d{3}s", r[1]) for r in rows)
    assert "charge #1 RuntimeError: card declined" in " ".join(rows[2])
    assert rows[3][3:6] == ["_main_", "charge", "#2"]
    data = json.loads(ok(db, "history", "o-1", "--json").output)
    assert data["dropped"] == 0 and [e["seq"] for e in data["events"]] == [1, 2, 3, 4]
    assert data["events"][2]["error"] == "RuntimeError: card declined"


def test_rewind_and_fork_from_the_command_line(db: str) -> None:
    ok(db, "send", "o-1", "paid", "10")
    assert "o-1: rewound to event 2, now resuming" in ok(db, "rewind", "o-1", "--to", "2").output
    assert (
        "o-2: forked from o-1 at event 4"
        in ok(db, "fork", "o-1", "--to", "4", "--id", "o-2").output
    )
    with open_store(db) as store:
        assert json.loads(store.get("o-1").data) == {"reserved": 1}
        assert store.get("o-2").status == "waiting"
    history = ok(db, "history", "o-1").output
    assert "rewound" in history and "to=2" in history


def test_prune_and_stuck_from_the_command_line(db: str) -> None:
    assert ok(db, "stuck").output == "nothing is stuck\n"
    ok(db, "send", "o-1", "paid", "10")
    assert ok(db, "prune", "--older-than", "30d").output.startswith("pruned 0 ")
    assert ok(db, "prune", "--older-than", "0s").output.startswith("pruned 1 ")
    assert stored(db) == []
    assert json.loads(ok(db, "stuck", "--json").output) == []


@pytest.mark.parametrize(
    "args",
    [
        ["history", "nobody"],
        ["rewind", "o-1", "--to", "99"],
        ["rewind", "o-1"],
        ["fork", "o-1", "--to", "2", "--id", "o-1"],
        ["prune", "--older-than", "soon"],
        ["prune", "--older-than", "-3d"],
        ["stuck", "--older-than", "5x"],
    ],
)
def test_bad_input_is_one_error_line_and_changes_nothing(db: str, args: list[str]) -> None:
    before = stored(db)
    result = invoke(db, *args)
    assert result.exit_code != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert stored(db) == before

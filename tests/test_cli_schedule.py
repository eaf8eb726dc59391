"""``stmtflow schedule``: add, list, pause, resume, trigger, backfill and remove from a shell."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from stmtflow.cli import cli
from stmtflow.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent
REPORT = f"{ROOT / 'examples' / 'nightly_schedule.py'}:SalesReport"


def invoke(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db, *args])


def test_schedule_commands_round_trip(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    added = invoke(
        db,
        "schedule",
        "add",
        "nightly",
        REPORT,
        "30 2 * * *",
        "--timezone",
        "Europe/Paris",
        "--input",
        '{"region": "US"}',
        "--catchup",
        "1h30m",
        "--overlap",
        "buffer_one",
    )
    assert added.exit_code == 0, added.output
    assert "schedule nightly: SalesReport at '30 2 * * *' (Europe/Paris)" in added.output

    listed = json.loads(invoke(db, "schedule", "list", "--json").output)
    assert [(s["name"], s["input"], s["catchup"], s["overlap"]) for s in listed] == [
        ("nightly", {"region": "US"}, "PT1H30M", "buffer_one")
    ]
    table = invoke(db, "schedule", "list").output
    assert "nightly" in table and "Europe/Paris" in table

    assert invoke(db, "schedule", "pause", "nightly").output == "schedule nightly paused\n"
    assert "paused" in invoke(db, "schedule", "list").output
    assert "resumed; next 20" in invoke(db, "schedule", "resume", "nightly").output

    triggered = invoke(db, "schedule", "trigger", "nightly")
    assert triggered.exit_code == 0 and "started nightly@" in triggered.output
    assert ": finished" in triggered.output

    filled = invoke(
        db, "schedule", "backfill", "nightly", "--start", "2026-01-01", "--end", "2026-01-03"
    )
    assert filled.output == (
        "2 fire(s) of nightly: nightly@2026-01-01T01:30:00Z, nightly@2026-01-02T01:30:00Z\n"
    )
    with Engine(db) as engine:
        january = [r for r in engine.store.list() if r.id.startswith("nightly@2026-01")]
    assert [r.status for r in january] == ["finished", "finished"]
    assert all(json.loads(r.data)["region"] == "US" for r in january)

    assert invoke(db, "schedule", "remove", "nightly").output == "schedule nightly removed\n"
    assert invoke(db, "schedule", "list").output == "no schedules\n"


def test_schedule_refusals_are_one_error_line_and_store_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    for args, message in [
        (["add", "n", REPORT, "bad cron"], "bad cron expression 'bad cron'"),
        (["add", "n", REPORT, "* * * * *", "--timezone", "Nowhere/City"], "unknown time zone"),
        (["add", "n", REPORT, "* * * * *", "--catchup", "soon"], "bad duration 'soon'"),
        (["add", "n", REPORT, "* * * * *", "--input", '{"total": "x"}'], "input does not fit"),
    ]:
        result = invoke(db, "schedule", *args)
        assert result.exit_code == 1
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert invoke(db, "schedule", "list", "--json").output.strip() == "[]"
    for verb in ("pause", "resume", "trigger", "remove"):
        result = invoke(db, "schedule", verb, "ghost")
        assert result.exit_code == 1 and "no schedule named 'ghost'" in result.stderr

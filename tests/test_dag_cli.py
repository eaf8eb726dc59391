"""``stmtflow dag validate`` and ``stmtflow dag run`` (docs/cli.md, docs/dag.md)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

import stmtflow as sf
from stmtflow.cli import cli

ROOT = Path(__file__).resolve().parent.parent
YAML = str(ROOT / "examples" / "dag_pipeline.yaml")
HANDLERS = str(ROOT / "examples" / "dag_pipeline.py")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_validate_accepts_a_good_file() -> None:
    result = invoke("dag", "validate", YAML, "--handlers", HANDLERS)
    assert result.exit_code == 0, result.output
    assert result.output == f"{YAML}: valid (5 steps)\n"


def test_validate_lists_every_problem_one_a_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "steps:\n"
        "  - {id: a, handler: live_rates, depends_on: [b]}\n"
        "  - {id: b, handler: no_such_handler, depends_on: [a]}\n"
        "  - {id: c, handler: notify, retry: {max_attempts: -1}}\n"
    )
    result = invoke("dag", "validate", str(bad), "--handlers", HANDLERS)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{bad}: 3 problem(s)",
        "  - steps[2].retry.max_attempts: -1 is less than the minimum of 1",
        "  - steps[1] ('b').handler: unknown handler 'no_such_handler'",
        "  - cycle: a -> b -> a (each depends on the one after it)",
    ]
    without = invoke("dag", "validate", str(bad))  # no handlers: their names go unchecked
    assert "unknown handler" not in without.output and "2 problem(s)" in without.output


def test_run_works_the_dag_to_its_end_and_prints_the_outputs(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'dag.db'}"
    result = invoke(
        "--db", db, "dag", "run", YAML, "--handlers", HANDLERS,
        "--input", '{"night": "night-1"}', "--id", "n1", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output[result.output.index("{") :])
    assert printed["status"] == "finished"
    assert printed["outputs"]["rates"] == {"usd_eur": 0.9}  # the fallback's, after 2 attempts
    with sf.Engine(db) as engine:
        assert engine.store.get("n1").status == "finished"


def test_run_of_a_failing_dag_exits_non_zero_with_the_error(tmp_path: Path) -> None:
    result = invoke(
        "--db", f"sqlite:///{tmp_path / 'dag.db'}", "dag", "run", YAML, "--handlers", HANDLERS,
        "--input", '{"night": "night-2", "chat_down": true}', "--id", "n2",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "took down the report of night-2" in result.output
    assert "n2 failed" in result.output and "PermissionError" in result.output


def test_run_refuses_an_invalid_file_and_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [{id: a, handler: missing}]\n")
    result = invoke("--db", "memory://", "dag", "run", str(bad), "--handlers", HANDLERS)
    assert result.exit_code == 1 and "unknown handler 'missing'" in result.output
    result = invoke(
        "--db", "memory://", "dag", "run", YAML, "--handlers", HANDLERS, "--input", "[1]"
    )
    assert result.exit_code == 1 and "--input must be a JSON object" in result.output

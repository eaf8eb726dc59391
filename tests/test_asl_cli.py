"""``stmtflow asl validate`` and ``stmtflow asl run``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from stmtflow.cli import cli

LOOP = {
    "StartAt": "Wait",
    "States": {
        "Wait": {"Type": "Wait", "Seconds": 86400, "Next": "Charge"},
        "Charge": {"Type": "Task", "Resource": "charge", "ResultPath": "$.charged", "End": True},
    },
}


def write(tmp_path: Path, name: str, value: object) -> str:
    path = tmp_path / name
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return str(path)


def test_validate_accepts_a_valid_machine(tmp_path: Path) -> None:
    path = write(tmp_path, "m.json", LOOP)
    result = CliRunner().invoke(cli, ["asl", "validate", path])
    assert result.exit_code == 0
    assert result.output == f"{path}: a valid state machine (2 states)\n"


def test_validate_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    bad = {"StartAt": "A", "States": {"A": {"Type": "Pass"}, "B": {"Type": "Nope"}}}
    path = write(tmp_path, "bad.json", bad)
    result = CliRunner().invoke(cli, ["asl", "validate", path])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{path}: 3 problems",
        '  - States.A: needs "Next" or "End": true',
        "  - States.B: unknown state type 'Nope'",
        "  - States.B: unreachable from StartAt",
    ]


def test_validate_refuses_a_file_that_is_not_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["asl", "validate", write(tmp_path, "x.json", "{oops")])
    assert result.exit_code != 0
    assert "not JSON text" in result.output


def test_run_prints_the_output_with_resources_from_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "m.json", LOOP)
    source = tmp_path / "res.py"
    source.write_text("RESOURCES = {'charge': lambda order: order['amount'] * 100}\n")
    result = CliRunner().invoke(
        cli, ["asl", "run", path, "--input", '{"amount": 3}', "--resources", f"{source}:RESOURCES"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "status": "SUCCEEDED",
        "output": {"amount": 3, "charged": 300},
    }


def test_run_exits_1_with_the_error_when_the_execution_fails(tmp_path: Path) -> None:
    machine = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope", "Cause": "c"}}}
    result = CliRunner().invoke(cli, ["asl", "run", write(tmp_path, "f.json", machine)])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"status": "FAILED", "error": "Nope", "cause": "c"}


def test_run_refuses_an_invalid_machine_or_input(tmp_path: Path) -> None:
    path = write(tmp_path, "m.json", LOOP)
    result = CliRunner().invoke(cli, ["asl", "run", path])  # no --resources for the Task
    assert result.exit_code != 0
    assert "States.Charge" in result.output
    result = CliRunner().invoke(cli, ["asl", "run", path, "--input", "{bad"])
    assert result.exit_code != 0
    assert "--input is not valid JSON" in result.output


def test_graph_draws_the_states_transitions_choices_and_catchers(tmp_path: Path) -> None:
    machine = {
        "StartAt": "Pick",
        "States": {
            "Pick": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Fan"}],
                "Default": "Done",
            },
            "Fan": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "Each",
                    "States": {"Each": {"Type": "Pass", "End": True}},
                },
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}],
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    result = CliRunner().invoke(cli, ["asl", "graph", write(tmp_path, "m.json", machine)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "flowchart TD"
    assert "  start((start)) --> s0" in lines
    assert '  s0{"Pick<br/>Choice"}' in lines
    assert '  s0 -->|"$.n NumericGreaterThan 1"| s1' in lines
    assert "  s0 -->|default| s2" in lines
    assert '  subgraph s1["Fan<br/>Map"]' in lines
    assert '    s3["Each<br/>Pass"]' in lines
    assert '  s1 -.->|"catch States.ALL"| s2' in lines
    assert '  s2(["Done<br/>Succeed"])' in lines
    bad = write(tmp_path, "bad.json", {"StartAt": "X", "States": {}})
    result = CliRunner().invoke(cli, ["asl", "graph", bad])
    assert result.exit_code != 0
    assert "States: must be a non-empty object of states" in result.output

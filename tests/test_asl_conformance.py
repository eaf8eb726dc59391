"""The ASL conformance sample: recorded executions replayed against `stmtflow.asl.run`.

``tests/asl/sample.jsonl`` is a copy of the project's conformance sample (60 executions, each
with the status and output, or error name, a reference interpreter gave): every case is
replayed here, one test each, compared as the checker compares (outputs equal as JSON with
``1 == 1.0`` and ``true != 1``; for a failure only the error name). Where the shared folder
with the checker itself (``shared/asl/check.py``) is found next to the repository or one of
its parents, or named by ``STMTFLOW_ASL_CASES``, the checker is run over its cases too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stmtflow.asl import conformance_run

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = Path(__file__).resolve().parent / "asl" / "sample.jsonl"
CASES = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]


def json_equal(a: Any, b: Any) -> bool:
    """Equal as JSON: key order ignored, ``1 == 1.0``, but ``true != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_the_sample_holds_every_kind_of_result() -> None:
    assert len(CASES) == 60
    assert {case["status"] for case in CASES} == {"SUCCEEDED", "FAILED"}


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_a_recorded_execution_gives_the_recorded_result(case: dict[str, Any]) -> None:
    got = conformance_run(case["definition"], case["input"])
    assert got["status"] == case["status"], got
    if case["status"] == "SUCCEEDED":
        assert json_equal(got["output"], case["output"]), (got["output"], case["output"])
    else:
        assert got["error"] == case["error"], got


def cases_folder() -> Path | None:
    given = os.environ.get("STMTFLOW_ASL_CASES")
    if given:
        return Path(given)
    for folder in [ROOT, *ROOT.parents]:
        candidate = folder / "shared" / "asl"
        if (candidate / "check.py").is_file():
            return candidate
    return None


def test_the_shared_checker_passes_every_case() -> None:
    folder = cases_folder()
    if folder is None:
        pytest.skip(
            "no shared/asl folder with the checker next to this checkout (the copied "
            "sample is replayed above)"
        )
    done = subprocess.run(
        [sys.executable, str(folder / "check.py"), "stmtflow.asl:conformance_run", "--show", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    match = re.fullmatch(r"(\d+) passed, (\d+) failed", last)
    assert match, done.stdout + done.stderr
    passed, failed = map(int, match.groups())
    assert failed == 0, done.stdout
    assert passed >= 60
    assert done.returncode == 0

"""The ASL conformance sample: recorded executions replayed against `stmtflow.asl.run`.

The sample and its checker live in the project's shared folder, ``shared/asl`` (next to the
repository on CI, or next to one of its parent folders in a developer's work tree); set
``STMTFLOW_ASL_CASES`` to a folder holding ``check.py`` and ``sample.jsonl`` to use another.
Every case must pass.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cases_folder() -> Path | None:
    given = os.environ.get("STMTFLOW_ASL_CASES")
    if given:
        return Path(given)
    for folder in [ROOT, *ROOT.parents]:
        candidate = folder / "shared" / "asl"
        if (candidate / "check.py").is_file():
            return candidate
    return None


def test_every_recorded_execution_of_the_sample_passes() -> None:
    folder = cases_folder()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("the ASL conformance sample (shared/asl) is missing")
        pytest.skip("no shared/asl folder with the conformance sample")
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

"""``stmtflow serve``: the HTTP service on uvicorn, its types chosen like the worker's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from stmtflow.cli import cli
from tests.test_http_browser import free_port

ROOT = Path(__file__).resolve().parent.parent
TARGET = str(ROOT / "tests" / "http_flows.py") + ":Order"


def test_serve_runs_the_app_with_tokens_and_a_worker(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STMTFLOW_TOKENS": "a,b"}
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stmtflow.cli", "--db", db, "serve", TARGET, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert httpx.get(f"{base}/instances").status_code == 401
        auth = {"Authorization": "Bearer b"}
        started = httpx.post(f"{base}/workflows/Order/instances", json={"id": "o-1"}, headers=auth)
        assert started.status_code == 201
        assert started.json()["status"] == "waiting"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert "serving Order on http://127.0.0.1:" in err
    assert "(token required) with a worker" in err


def test_serve_refuses_a_target_that_does_not_load() -> None:
    result = CliRunner().invoke(cli, ["--db", "memory://", "serve", "nowhere.py:Nope"])
    assert result.exit_code != 0
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr

"""Launching and stopping the worker and sender processes of the multi-process tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flows

HERE = Path(__file__).resolve().parent


class Procs:
    """The processes one test started (and only those): launched, killed, reaped."""

    def __init__(self, workdir: Path, steplog_url: str) -> None:
        self.workdir = workdir
        self.steplog_url = steplog_url
        self.started: list[subprocess.Popen[bytes]] = []
        self._outputs: dict[int, Path] = {}

    def launch(self, script: str, *args: str, env: dict[str, str] | None = None) -> int:
        """Start ``python tests/workers/<script> args...``; returns its pid."""
        environ = {k: v for k, v in os.environ.items() if k != flows.HANG_ENV}
        environ.update({flows.STEPLOG_ENV: self.steplog_url, **(env or {})})
        n = len(self.started)
        out = self.workdir / f"{n}-{script}.out"
        err = self.workdir / f"{n}-{script}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(HERE / script), *args],
                env=environ,
                stdout=stdout,
                stderr=stderr,
                cwd=self.workdir,
            )
        self.started.append(proc)
        self._outputs[proc.pid] = out
        return proc.pid

    def proc(self, pid: int) -> subprocess.Popen[bytes]:
        return next(p for p in self.started if p.pid == pid)

    def stderr(self, pid: int) -> str:
        """The last lines a process wrote to stderr (for failure messages)."""
        text = self._outputs[pid].with_suffix(".err").read_text(errors="replace")
        return "\n".join(text.splitlines()[-30:])

    def alive(self, pid: int) -> bool:
        return self.proc(pid).poll() is None

    def kill(self, pid: int) -> None:
        """SIGKILL: no cleanup, no finally blocks, connections dropped mid-whatever."""
        proc = self.proc(pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, pid: int, timeout: float = 30) -> dict[str, Any]:
        """SIGTERM (finish the current unit, then exit); returns the JSON line it printed."""
        proc = self.proc(pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return self.result(pid, timeout)

    def result(self, pid: int, timeout: float) -> dict[str, Any]:
        """Wait for the process to exit 0 and return the JSON summary it printed."""
        proc = self.proc(pid)
        code = proc.wait(timeout=timeout)
        assert code == 0, f"process {pid} exited with {code}:\n{self.stderr(pid)}"
        lines = self._outputs[pid].read_text().strip().splitlines()
        assert lines, f"process {pid} printed nothing:\n{self.stderr(pid)}"
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float, *pids: int) -> None:
        """Poll ``ready`` until true; fail naming ``what`` (with the processes' stderr)."""
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [pid for pid in pids if not self.alive(pid)]
            if dead or time.monotonic() > deadline:
                why = f"process {dead[0]} died" if dead else f"timed out after {timeout}s"
                logs = "\n".join(f"--- {pid}:\n{self.stderr(pid)}" for pid in pids)
                raise AssertionError(f"waiting for {what}: {why}\n{logs}")
            time.sleep(0.02)

    def cleanup(self) -> None:
        """Kill whatever this test started and is still running."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

"""A ``redis-server`` of a test's own (one port, one directory), for the tests that must stop
it or count its commands: the shared server on 6379 is never stopped or flushed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of this test's own: one port, one directory, AOF fsynced per write."""

    def __init__(self, directory: Path) -> None:
        if not Path(REDIS_SERVER).exists():
            why = f"no redis-server binary at {REDIS_SERVER} (apt-get install redis-server)"
            if os.environ.get("CI"):
                pytest.fail(f"{why}; CI is set, so the Redis restart test must run")
            pytest.skip(why)
        self.directory = directory
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.directory), "--appendonly", "yes"]
        args += ["--appendfsync", "always", "--save", "", "--daemonize", "no"]
        log = (self.directory / "server.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not self._answers():
            assert self.proc.poll() is None, (self.directory / "server.log").read_text()
            assert time.monotonic() < deadline, "the private redis-server did not come up"
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no shutdown, no final fsync
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

"""The stores a composition test runs on, and the URL of each for one test.

Every store keeps children and inboxes (docs/stores.md, "Inboxes and batches"), so the tests
of children, buffered sends and batches run on all five; the server-backed ones are marked and
get a database, key prefix or bucket of the test's own from the fixtures in ``conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

EVERY_STORE = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("nats", marks=pytest.mark.nats),
]
"""Fixture params: each store by name."""

HISTORY_STORES = EVERY_STORE
"""The stores that keep histories (docs/operations.md): every one."""

SERVER_STORES = [param for param in EVERY_STORE if not isinstance(param, str)]
"""The stores that live on a server (several processes on several machines share them)."""


def store_url(request: pytest.FixtureRequest, tmp_path: Path, kind: str, file: str) -> str:
    """The URL of a store of ``kind`` that is this test's alone (SQLite: ``tmp_path/file``)."""
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / file}"
    fixture = {"postgres": "pg_url", "redis": "redis_url", "nats": "nats_url"}[kind]
    return str(request.getfixturevalue(fixture))

"""Claiming an instance's record: a lease owner name per claim, and a claim that waits.

Used by the unit of work (`stmtflow.runtime._unit`, which re-exports both) and by what works on
other instances (children, inboxes: `stmtflow.runtime._family`).
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from stmtflow.errors import ConflictError
from stmtflow.stores import Record

if TYPE_CHECKING:
    from stmtflow.runtime._engine import Engine

__all__ = ["claim", "claim_owner"]


def claim_owner(engine: Engine) -> str:
    """A lease owner name for one claim of ``engine``.

    A store lets an owner re-claim its own live lease: each claim gets a name of its own, so
    two units of one engine (two threads sending to one instance) exclude each other.
    """
    return f"{engine.owner}#{uuid.uuid4().hex[:6]}"


def claim(engine: Engine, id: str, wait: timedelta = timedelta(seconds=10)) -> Record:
    """Claim one instance, waiting a little (real time) while another worker holds it."""
    deadline = time.monotonic() + wait.total_seconds()
    delay = 0.01
    owner = claim_owner(engine)
    while True:
        try:
            return engine.store.claim(id, owner, engine.lease, engine.clock())
        except ConflictError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

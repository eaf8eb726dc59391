"""The frames of an execution: create them, walk them, and read what they wait for.

See `stmtflow.asl._machine` for what a frame is. These helpers touch only the JSON, so the
workflow's wait (its timer, its task-token event) can ask them without running anything.

Example:
    >>> from datetime import datetime, UTC
    >>> ex = new_execution({"StartAt": "A"}, {}, datetime(2024, 1, 1, tzinfo=UTC))
    >>> ex["root"]["at"], next_due(ex), waiting_tokens(ex)
    ('A', None, [])
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

__all__ = [
    "deliver",
    "frames",
    "new_execution",
    "new_frame",
    "next_due",
    "settle",
    "waiting_tokens",
]


def new_execution(
    definition: dict[str, Any], input: Any, now: datetime, name: str = "execution"
) -> dict[str, Any]:
    """The JSON of an execution about to start at the machine's ``StartAt``."""
    return {
        "name": name,
        "input": input,
        "start": now.isoformat(),
        "root": new_frame([], definition["StartAt"], input, now),
        "result": None,
    }


def new_frame(where: list[list[Any]], at: str, input: Any, now: datetime) -> dict[str, Any]:
    return {"where": where, "at": at, "input": input, "entered": now.isoformat(), "attempt": 0}


def frames(frame: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``frame`` and every frame running under it (a Map's: those its progress lists)."""
    yield frame
    kids = frame.get("kids", ())
    progress = frame.get("progress")
    if progress is not None:
        for index in progress["running"]:
            yield from frames(kids[index])
        return
    for kid in kids:
        if kid.get("started") and "end" not in kid:
            yield from frames(kid)


def next_due(execution: dict[str, Any]) -> str | None:
    """The earliest time (ISO 8601) a frame waits for, or None."""
    dues = [f["due"] for f in frames(execution["root"]) if f.get("due")]
    return min(dues, key=datetime.fromisoformat) if dues else None


def waiting_tokens(execution: dict[str, Any]) -> list[str]:
    """The task tokens the execution waits to be sent back."""
    return [f["token"] for f in frames(execution["root"]) if f.get("token")]


def deliver(execution: dict[str, Any], token: str, reply: dict[str, Any]) -> bool:
    """Hand a task token's answer (``{"output": ...}`` or ``{"error", "cause"}``) to its frame."""
    for frame in frames(execution["root"]):
        if frame.get("token") == token:
            frame["reply"] = reply
            return True
    return False


def settle(frame: dict[str, Any]) -> None:
    """Forget what the frame's last state waited for."""
    for key in ("phase", "due", "token", "reply", "kids", "progress", "deadline"):
        frame.pop(key, None)

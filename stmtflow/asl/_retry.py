"""Retry and Catch: which error names a retrier or catcher takes, and how long to back off.

``States.ALL`` matches every error name, and ``States.TaskFailed`` every one but
``States.Timeout``. ``States.Runtime`` (a path that matches nothing, a bad value for a field)
is a fault of the definition, not of the work: as in Step Functions, no retrier or catcher
takes it, and the execution fails. The
delay before attempt ``n + 1`` (``n`` retries made by this retrier so far) is
``IntervalSeconds * BackoffRate ** n``, capped by ``MaxDelaySeconds``. ``JitterStrategy``
``FULL`` would draw the delay at random; runs here are reproducible, so it is read as ``NONE``.

Example:
    >>> takes(["States.ALL"], "Boom"), takes(["States.TaskFailed"], "States.Timeout")
    (True, False)
    >>> takes(["States.ALL"], "States.Runtime")
    False
    >>> delay({"IntervalSeconds": 2, "BackoffRate": 3, "MaxDelaySeconds": 10}, 2)
    10.0
"""

from __future__ import annotations

from typing import Any

__all__ = ["delay", "error_output", "takes"]


def takes(names: list[str], error: str | None) -> bool:
    """Whether an ``ErrorEquals`` list matches ``error``."""
    if error == "States.Runtime":
        return False
    for name in names:
        if name == "States.ALL":
            return True
        if name == "States.TaskFailed" and error != "States.Timeout":
            return True
        if name == error:
            return True
    return False


def delay(retrier: dict[str, Any], retries: int) -> float:
    """Seconds to wait before the next attempt, ``retries`` retries having been made."""
    interval = float(retrier.get("IntervalSeconds", 1))
    rate = float(retrier.get("BackoffRate", 2.0))
    seconds = interval * rate**retries
    cap = retrier.get("MaxDelaySeconds")
    return float(min(seconds, cap)) if cap is not None else seconds


def error_output(error: str | None, cause: str | None) -> dict[str, Any]:
    """The value a catcher passes on: ``{"Error": ..., "Cause": ...}`` (no cause: "")."""
    return {"Error": error, "Cause": "" if cause is None else cause}

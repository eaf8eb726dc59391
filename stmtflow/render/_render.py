"""Seeing a definition: `definition_json`, `to_mermaid`, `to_dot` and `render_image`.

The diagrams are flowcharts: steps are boxes, ``If``/``Switch``/``For`` diamonds with labelled
edges, ``Wait``/``Sleep`` parallelograms with one edge per event, ``WaitFor`` a hexagon, each
``Go`` body a lane of its own. Given a `State`, live positions and pending events are marked;
``docs/diagrams.md`` shows the rules and an example.

Example:
    >>> import stmtflow as sf
    >>> definition_json(sf.S(sf.Go("ping", sf.Step("send", print)), sf.Return()))["body"][1]
    {'type': 'Return'}
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

from stmtflow.dsl._kind import kind_of
from stmtflow.dsl._statements import Statement
from stmtflow.errors import GraphvizError, GraphvizNotFound
from stmtflow.render._dot import dot
from stmtflow.render._flowchart import Children, flowchart
from stmtflow.render._mermaid import mermaid
from stmtflow.state import State

__all__ = [
    "GraphvizError",
    "GraphvizNotFound",
    "definition_json",
    "render_image",
    "to_dot",
    "to_mermaid",
]


def definition_json(section: Statement) -> dict[str, Any]:
    """The tree as JSON-ready data: types, names and nesting, no code.

    Every statement is a dict whose first key is ``"type"`` (the class name); keys always come in
    the same order, so ``json.dumps(..., indent=2)`` snapshots well. A *body* is a list of
    statements; a *cond* is ``true``/``false`` for an eager condition or ``"lazy"`` for a callable;
    durations are seconds (an int when whole).

    ========= ===============================================================================
    Section   ``{"type", "body"}``
    Step      ``{"type", "name", "retry"}`` — retry is null or ``{"max_attempts",
              "initial_interval", "backoff_coefficient", "max_interval", "non_retryable"}``
              (intervals in seconds, exception type names)
    If        ``{"type", "branches": [{"cond", "body"}], "else"}`` — else is a body or null
    Switch    ``{"type", "cases"}`` — each a ``Case {"type", "cond", "body"}`` or a
              ``Default {"type", "body"}``
    For       ``{"type", "name", "cond", "body"}``
    Go        ``{"type", "name", "id", "body"}`` — id is the string, ``"lazy"``, or null (the
              default: the name)
    Wait      ``{"type", "name", "events"}`` — each an ``On {"type", "event", "handler",
              "timer", "body"}``: handler is the handler's type, timer the seconds of a
              ``Timer`` delay, its ISO 8601 time for ``Timer(at=...)``, else null
    WaitFor   ``{"type", "name", "cond", "handler"}`` — handler is true when one is given
    Sleep     ``{"type", "name", "seconds", "event"}`` — event is its timer event's name
    Break, Continue, Return  ``{"type"}``
    ========= ===============================================================================

    A value that is not a statement shows as ``{"type": "invalid", "got": <its type name>}``.

    Example:
        >>> import stmtflow as sf
        >>> definition_json(sf.S(sf.Step("charge", print), sf.If(True, sf.Break())))
        {'type': 'Section', 'body': [{'type': 'Step', 'name': 'charge', 'retry': None}, \
{'type': 'If', 'branches': [{'cond': True, 'body': [{'type': 'Break'}]}], 'else': None}]}
    """
    return _json(section)


def to_mermaid(
    section: Statement, state: State | None = None, *, children: Children | None = None
) -> str:
    """A Mermaid flowchart of the definition, with ``state``'s live positions when given.

    ``children`` maps a `Call`'s name to a line about its child (e.g. its id and status), added
    to the call's box (``stmtflow graph --id`` passes the stored children's statuses).

    Example:
        >>> import stmtflow as sf
        >>> print(to_mermaid(sf.S(sf.Step("hello", print))), end="")
        flowchart TD
            n_start(["start"])
            n0["hello"]
            n_end(["end"])
            n_start --> n0
            n0 --> n_end
    """
    return mermaid(flowchart(section, state, children=children))


def to_dot(
    section: Statement, state: State | None = None, *, children: Children | None = None
) -> str:
    """A Graphviz DOT digraph of the definition, with ``state``'s live positions when given
    (``children`` as for `to_mermaid`).

    Example:
        >>> import stmtflow as sf
        >>> print(to_dot(sf.S(sf.Step("hello", print))).splitlines()[5])
            "n0" [label="hello", shape=box, style=rounded];
    """
    return dot(flowchart(section, state, children=children))


def render_image(
    section: Statement,
    state: State | None = None,
    format: str = "svg",
    *,
    children: Children | None = None,
) -> bytes:
    """The DOT diagram drawn by Graphviz's ``dot`` program, as ``format`` (svg, png, pdf...)
    (``children`` as for `to_mermaid`).

    Raises:
        GraphvizNotFound: ``dot`` is not installed (Debian/Ubuntu package ``graphviz``).
        GraphvizError: ``dot`` failed, e.g. on an unknown format.

    Example:
        >>> import stmtflow as sf
        >>> svg = render_image(sf.S(sf.Step("hello", print)))  # doctest: +SKIP
        >>> svg.startswith(b"<?xml")  # doctest: +SKIP
        True
    """
    if not re.fullmatch(r"[A-Za-z0-9_:.]+", format):
        raise GraphvizError(f"not a Graphviz output format: {format!r}")
    program = shutil.which("dot")
    if program is None:
        raise GraphvizNotFound(
            "Graphviz's `dot` program was not found on PATH; install Graphviz "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz)"
        )
    source = to_dot(section, state, children=children).encode()
    try:
        done = subprocess.run(
            [program, f"-T{format}"], input=source, capture_output=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise GraphvizError(f"dot -T{format} did not finish within 120 seconds") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise GraphvizError(f"dot -T{format} failed (exit {done.returncode}): {message}")
    return done.stdout


def _json(stmt: object) -> dict[str, Any]:
    kind = kind_of(stmt)
    if kind is None:
        return {"type": "invalid", "got": type(stmt).__name__}
    return kind.json(stmt, _json)

"""What the service knows of its registered workflows: their data schemas and their events.

``/openapi.json`` and ``/workflows`` describe every event of every registered workflow with
its input schema, before any instance exists. A definition may depend on its data, so the
events are read from the definition of the workflow's default data (its fields' defaults,
unvalidated); an event only reachable with other data, inside a thread body built from a
thread's argument, or in a definition that cannot be built from the defaults, is missing
from the catalogue but still accepted by the generic event route. Timer events are left out:
the engine fires them.

Example:
    >>> import stmtflow as sf
    >>> def approve(ok: bool) -> None: ...
    >>> class Approval(sf.WorkflowState):
    ...     def definition(self):
    ...         return sf.S(sf.Wait("decide", sf.OnEvent("approve", approve)))
    >>> [(e.name, e.schema) for e in events_of(Approval)]
    [('approve', {'type': 'boolean'})]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stmtflow.analysis import walk
from stmtflow.dsl._handlers import Timer
from stmtflow.dsl._wait import On
from stmtflow.dsl._workflow import WorkflowState

__all__ = ["EventInfo", "events_of"]


@dataclass(frozen=True, slots=True)
class EventInfo:
    """One event a workflow's definition waits on."""

    name: str
    handler: str
    """The handler type (``FunctionHandler``, ``HumanInput``, ...)."""
    schema: dict[str, Any]
    """The input's JSON Schema (``{}``: any JSON value)."""
    prompt: str | None = None


def events_of(cls: type[WorkflowState]) -> list[EventInfo]:
    """The events of ``cls``'s definition built from its default data, in definition order."""
    try:
        section = cls.model_construct().definition()
    except Exception:  # a definition that needs data the defaults lack: no catalogue entry
        return []
    found: dict[str, EventInfo] = {}
    for node in walk(section):
        if not isinstance(node, On) or isinstance(node.handler, Timer) or node.event in found:
            continue
        schemas = getattr(node.handler, "schemas", None)
        schema = schemas()[0] if callable(schemas) else {}
        handler = getattr(node.handler, "type", None) or type(node.handler).__name__
        found[node.event] = EventInfo(
            node.event, str(handler), schema, getattr(node.handler, "prompt", None)
        )
    return list(found.values())

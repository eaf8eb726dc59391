"""``GET /openapi.json``: an OpenAPI 3.1 description built from the registered workflows.

Besides the generic routes, every registered workflow gets a start operation whose body
carries its data schema, and every event of its definition (`stmtflow.http._catalogue`) an
operation of its own, ``POST /workflows/<type>/instances/{id}/events/<event>``, whose body is
that event's input schema: a client generator makes one typed method per event. Pydantic's
``$defs`` are moved to ``components/schemas`` (prefixed with the workflow type, so two
workflows' ``Item`` models do not collide) and their ``$ref``s rewritten to point there.

Example:
    >>> import stmtflow as sf
    >>> class Approval(sf.WorkflowState):
    ...     def definition(self):
    ...         return sf.S(sf.Wait("decide", sf.OnEvent("approve", lambda ok: None)))
    >>> spec = openapi({"Approval": Approval}, secured=False)
    >>> spec["paths"]["/workflows/Approval/instances/{id}/events/approve"]["post"]["operationId"]
    'send_Approval_approve'
"""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any
from urllib.parse import quote

from stmtflow.dsl._workflow import WorkflowState
from stmtflow.http._catalogue import events_of
from stmtflow.state import WorkflowStatus

__all__ = ["openapi"]

PROBLEM = {"$ref": "#/components/schemas/Problem"}
_PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}},
            },
        },
    },
    "required": ["type", "title", "status"],
}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_EVENT = {"name": "event", "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_SEND_QUERY = [
    _query("thread_id", {"type": "string"}, "the waiting thread, when several wait on the event"),
    _query("key", {"type": "string"}, "deduplicates: a key seen before delivers nothing"),
    _query("buffer", {"type": "boolean"}, "keep an event no thread waits on yet in the inbox"),
]


def _answers(ok: str, schema: dict[str, Any] | None = None, **more: str) -> dict[str, Any]:
    content = {"application/json": {"schema": schema or {}}}
    answers: dict[str, Any] = {"200": {"description": ok, "content": content}}
    for code, text in {"401": "no valid credential", "404": "unknown id", **more}.items():
        code = code.removeprefix("s")
        problem = {"application/problem+json": {"schema": PROBLEM}}
        answers[code] = {"description": text, "content": content if code < "3" else problem}
    return answers


def _op(op_id: str, summary: str, answers: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"operationId": op_id, "summary": summary, "responses": answers, **more}


def _body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "required": False,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


class _Schemas:
    """Pydantic schemas with their ``$defs`` hoisted into ``components/schemas``."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Problem": _PROBLEM_SCHEMA}

    def add(self, prefix: str, schema: dict[str, Any]) -> dict[str, Any]:
        defs = schema.get("$defs", {})
        names = {name: _component(f"{prefix}_{name}") for name in defs}
        for name, sub in defs.items():
            self.components[names[name]] = _rewrite(sub, names)
        rewritten: dict[str, Any] = _rewrite(
            {k: v for k, v in schema.items() if k != "$defs"}, names
        )
        return rewritten


def _component(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _rewrite(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _rewrite(v, names) for k, v in value.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = "#/components/schemas/" + names[ref.removeprefix("#/$defs/")]
        return out
    if isinstance(value, list):
        return [_rewrite(v, names) for v in value]
    return value


def openapi(workflows: dict[str, type[WorkflowState]], *, secured: bool) -> dict[str, Any]:
    """The OpenAPI document of a service over ``workflows`` (``secured``: bearer auth on)."""
    schemas = _Schemas()
    instance = {"type": "object", "description": "an instance: id, workflow, status, ..."}
    paths: dict[str, Any] = {
        "/healthz": {"get": {**_op("health", "liveness", _answers("ok")), "security": []}},
        "/workflows": {"get": _op("list_workflows", "registered workflows", _answers("types"))},
        "/instances": {
            "get": _op(
                "list_instances",
                "instances, oldest first, one page",
                _answers("a page", s400="bad query"),
                parameters=[
                    _query("status", {"enum": [s.value for s in WorkflowStatus]}, "status"),
                    _query("workflow", {"type": "string"}, "workflow type"),
                    _query("parent", {"type": "string"}, "the parent instance's id"),
                    _query("limit", {"type": "integer", "minimum": 1}, "page size"),
                    _query("offset", {"type": "integer", "minimum": 0}, "page start"),
                ],
            )
        },
        "/instances/{id}": {
            "get": _op("get_instance", "one instance", _answers("it", instance), parameters=[_ID])
        },
        "/instances/{id}/events": {
            "get": _op(
                "pending_events", "events it waits for", _answers("events"), parameters=[_ID]
            )
        },
        "/instances/{id}/events/{event}": {
            "post": _op(
                "send_event",
                "deliver any event (body: its input)",
                _answers("delivered", s409="not awaited", s422="invalid input"),
                parameters=[_ID, _EVENT, *_SEND_QUERY],
                requestBody=_body({}, "the event's input"),
            )
        },
        "/instances/{id}/cancel": {
            "post": _op(
                "cancel_instance",
                "cancel",
                _answers("cancelled", instance, s409="already ended"),
                parameters=[
                    _ID,
                    _query("compensate", {"type": "boolean"}, "run compensations first"),
                    _query("cascade", {"type": "boolean"}, "cancel its children (default)"),
                ],
            )
        },
        "/instances/{id}/history": {
            "get": _op(
                "history",
                "what happened to it, oldest first, and the events it can be rewound to",
                _answers("events", s501="the store keeps no history"),
                parameters=[_ID],
            )
        },
        "/instances/{id}/rewind": {
            "post": _op(
                "rewind",
                "restore data and state as they stood right after history event `to`",
                _answers("rewound", instance, s400="no `to`", s409="refused"),
                parameters=[
                    _ID,
                    {
                        "name": "to",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    },
                ],
            )
        },
        "/instances/{id}/children": {
            "get": _op("children", "instances it started", _answers("them"), parameters=[_ID])
        },
        "/instances/{id}/diagram": {
            "get": {
                **_op(
                    "diagram",
                    "flowchart with live positions",
                    _answers("svg"),
                    parameters=[
                        _ID,
                        _query("format", {"enum": ["svg", "mermaid", "dot"]}, "drawing format"),
                    ],
                ),
            }
        },
        "/inputs": {
            "get": _op(
                "inputs",
                "what people are asked for",
                _answers("rows"),
                parameters=[
                    _query("assignee", {"type": "string"}, "only those for this assignee"),
                    _query("workflow", {"type": "string"}, "only those of this workflow type"),
                ],
            )
        },
        "/callbacks/{id}/{event}": {
            "post": {
                **_op(
                    "signed_callback",
                    "deliver an event through a signed URL (no bearer token)",
                    _answers("delivered", s403="bad or expired signature", s422="invalid input"),
                    parameters=[
                        _ID,
                        _EVENT,
                        {
                            "name": "expires",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "integer"},
                        },
                        {
                            "name": "sig",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    requestBody=_body({}, "the event's input"),
                ),
                "security": [],
            }
        },
        "/metrics": {"get": _op("metrics", "Prometheus text format", _answers("metrics"))},
    }
    for name, cls in sorted(workflows.items()):
        base = f"/workflows/{quote(name, safe='')}/instances"
        data = schemas.add(name, cls.model_json_schema())
        start = {
            "type": "object",
            "properties": {"id": {"type": "string", "minLength": 1}, "data": data},
            "additionalProperties": False,
        }
        paths[base] = {
            "post": _op(
                f"start_{_component(name)}",
                f"start a {name} (the same id twice: the existing instance)",
                _answers(
                    "exists already", instance, s201="started", s409="id taken", s422="invalid data"
                ),
                requestBody=_body(start, f"the instance id and the {name} data"),
            )
        }
        for event in events_of(cls):
            summary = f"deliver {event.name!r} to a {name}"
            if event.prompt:
                summary += f" ({event.prompt})"
            paths[f"{base}/{{id}}/events/{quote(event.name, safe='')}"] = {
                "post": _op(
                    f"send_{_component(name)}_{_component(event.name)}",
                    summary,
                    _answers("delivered", s409="not awaited", s422="invalid input"),
                    parameters=[_ID, *_SEND_QUERY],
                    requestBody=_body(
                        schemas.add(f"{name}_{event.name}", event.schema), "the event's input"
                    ),
                )
            }
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "stmtflow service", "version": version("stmtflow")},
        "paths": paths,
        "components": {"schemas": schemas.components},
    }
    if secured:
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        spec["security"] = [{"bearer": []}]
    return spec

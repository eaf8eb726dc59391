"""The JSON routes: start, list, get, pending events, deliver, cancel, children, inputs, diagram.

Each route reads its arguments, calls the engine through its async entry points (the unit
runs in the engine's thread pool; the event loop never waits on the store) and answers with
the views of `stmtflow.http._views`. A refusal is a `Problem`, raised before anything is
written: an unknown id or workflow type is a 404, an event nobody waits for a 409, an input
that does not fit the handler's schema a 422 listing every problem. The engine's own refusals
change nothing stored, and the route checks what it can before it calls the engine.

Example (the routes are served by `create_app`; see docs/http.md for every route):
    >>> [r.path for r in Api.__new__(Api).routes()][:3]
    ['/workflows', '/workflows/{workflow}/instances', '/instances']
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stmtflow.errors import GraphvizNotFound, NotFound, StmtflowError
from stmtflow.http._auth import verify_callback
from stmtflow.http._catalogue import events_of
from stmtflow.http._problems import Problem, from_error
from stmtflow.http._views import (
    event_json,
    history_json,
    input_json,
    instance_json,
    record_json,
    summary_json,
)
from stmtflow.render import render_image, to_dot, to_mermaid
from stmtflow.runtime import Engine, HistoryEvent, Instance
from stmtflow.state import WorkflowStatus
from stmtflow.stores import Record
from stmtflow.stores._history import HistoryStore

__all__ = ["Api", "Counters", "read_json"]

PAGE = 50
MAX_PAGE = 500


@dataclass
class Counters:
    """What this service did: units run by kind, and those that ended in an error."""

    units: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, failed: bool) -> None:
        self.units[kind] = self.units.get(kind, 0) + 1
        if failed:
            self.failures[kind] = self.failures.get(kind, 0) + 1


async def read_json(request: Request) -> Any:
    """The request body as JSON (None when empty); a malformed body is a 400."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "malformed-json", f"the request body is not JSON: {exc}") from exc


def _flag(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise Problem(400, "bad-query", f"query parameter {name!r} must be true or false, got {raw!r}")


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Problem(
            400, "bad-query", f"query parameter {name!r} must be an integer {low}..{high}"
        )
    return int(raw)


class Api:
    """The JSON routes over one engine."""

    def __init__(self, engine: Engine, counters: Counters, secret: str | bytes | None) -> None:
        self.engine = engine
        self.counters = counters
        self.secret = secret

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/workflows", self.workflows),
            Route("/workflows/{workflow}/instances", self.start, methods=["POST"]),
            Route("/instances", self.list),
            Route("/instances/{id}", self.get),
            Route("/instances/{id}/events", self.pending),
            Route("/instances/{id}/events/{event}", self.deliver, methods=["POST"]),
            Route(
                "/workflows/{workflow}/instances/{id}/events/{event}",
                self.deliver,
                methods=["POST"],
            ),
            Route("/instances/{id}/cancel", self.cancel, methods=["POST"]),
            Route("/instances/{id}/children", self.children),
            Route("/instances/{id}/history", self.history),
            Route("/instances/{id}/rewind", self.rewind, methods=["POST"]),
            Route("/instances/{id}/diagram", self.diagram),
            Route("/inputs", self.inputs),
            Route("/callbacks/{id}/{event}", self.callback, methods=["POST"]),
        ]

    # -- helpers ----------------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """An engine read in its thread pool, its refusals as problems."""
        try:
            return await self.engine.athread(fn, *args, **kwargs)
        except StmtflowError as exc:
            raise from_error(exc) from exc

    async def _instance(self, id: str) -> Instance:
        inst: Instance = await self._call(self.engine.get, id)
        return inst

    def _workflow(self, name: str) -> type[Any]:
        cls = self.engine.workflows().get(name)
        if cls is None:
            raise Problem(404, "not-found", f"no workflow type {name!r} is registered")
        return cls

    # -- routes -----------------------------------------------------------------------------------

    async def workflows(self, request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "name": name,
                    "data_schema": cls.model_json_schema(),
                    "events": [
                        {"name": e.name, "handler": e.handler, "input_schema": e.schema}
                        for e in events_of(cls)
                    ],
                }
                for name, cls in sorted(self.engine.workflows().items())
            ]
        )

    async def start(self, request: Request) -> Response:
        cls = self._workflow(request.path_params["workflow"])
        body = await read_json(request)
        body = {} if body is None else body
        if not isinstance(body, dict) or set(body) - {"id", "data"}:
            raise Problem(
                422, "invalid-input", 'the body must be an object {"id"?: str, "data"?: object}'
            )
        id, data = body.get("id"), body.get("data") or {}
        if id is not None and (not isinstance(id, str) or not id):
            raise Problem(422, "invalid-input", "id must be a non-empty string")
        if not isinstance(data, dict):
            raise Problem(422, "invalid-input", "data must be an object")
        problems = _data_problems(cls, data)
        if problems:
            raise Problem(
                422, "invalid-input", f"invalid data for workflow {cls.__name__}", errors=problems
            )
        existing = None
        if id is not None:
            with contextlib.suppress(NotFound):  # a new id: started below
                existing = await self.engine.athread(self.engine.get, id)
        if existing is not None:
            if existing.workflow != request.path_params["workflow"]:
                raise Problem(
                    409, "id-taken", f"instance {id!r} exists and is a {existing.workflow}"
                )
            return JSONResponse(summary_json(existing), status_code=200)
        inst = await self._unit("start", self.engine.astart(cls, data, id=id))
        return JSONResponse(
            summary_json(inst), status_code=201, headers={"Location": f"/instances/{inst.id}"}
        )

    async def _unit(self, kind: str, work: Any) -> Any:
        """Await a unit of work, counting it; its refusals and errors as problems."""
        try:
            result = await work
        except StmtflowError as exc:
            problem = from_error(exc)
            self.counters.count(kind, failed=problem.status >= 500)
            raise problem from exc
        self.counters.count(kind, failed=False)
        return result

    async def list(self, request: Request) -> Response:
        query = request.query_params
        status = query.get("status") or None
        if status is not None and status not in {s.value for s in WorkflowStatus}:
            raise Problem(400, "bad-query", f"unknown status {status!r}")
        limit = _int(request, "limit", PAGE, 1, MAX_PAGE)
        offset = _int(request, "offset", 0, 0, 10**9)
        found = await self._call(
            self.engine.list,
            status,
            query.get("workflow") or None,
            parent_id=query.get("parent") or None,
            limit=limit + 1,
            offset=offset,
        )
        more = len(found) > limit
        return JSONResponse(
            {
                "items": [summary_json(i) for i in found[:limit]],
                "offset": offset,
                "limit": limit,
                "next_offset": offset + limit if more else None,
            }
        )

    async def get(self, request: Request) -> Response:
        id = request.path_params["id"]
        inst = await self._instance(id)
        pending = await self._call(self.engine.pending, id)
        return JSONResponse(instance_json(inst, pending))

    async def pending(self, request: Request) -> Response:
        events = await self._call(self.engine.pending, request.path_params["id"])
        return JSONResponse([event_json(e) for e in events])

    async def deliver(self, request: Request) -> Response:
        id, event = request.path_params["id"], request.path_params["event"]
        workflow = request.path_params.get("workflow")
        if workflow is not None:  # else an unknown id is the engine's NotFound: one read less
            inst = await self._instance(id)
            if inst.workflow != workflow:
                raise Problem(404, "not-found", f"instance {id!r} is not a {workflow}")
        return await self._deliver(request, id, event)

    async def _deliver(self, request: Request, id: str, event: str) -> Response:
        buffer = _flag(request, "buffer", False)
        input = await read_json(request)
        query = request.query_params
        engine = self.engine

        def send() -> tuple[Any, Record]:
            # One trip to the engine's thread pool for the unit and the record read after it:
            # each trip is a wait for the event loop's turn at the GIL.
            output = engine.send(
                id,
                event,
                input,
                thread_id=query.get("thread_id") or None,
                buffer=buffer,
                key=query.get("key") or None,
            )
            return output, engine.store.get(id)

        output, rec = await self._unit("send", engine.athread(send))
        return JSONResponse({"output": to_jsonable_python(output), "instance": record_json(rec)})

    async def callback(self, request: Request) -> Response:
        id, event = request.path_params["id"], request.path_params["event"]
        query = request.query_params
        verify_callback(self.secret, id, event, query.get("expires"), query.get("sig"))
        await self._instance(id)
        return await self._deliver(request, id, event)

    async def cancel(self, request: Request) -> Response:
        id = request.path_params["id"]
        compensate = _flag(request, "compensate", False)
        cascade = _flag(request, "cascade", True)
        await self._instance(id)
        inst = await self._unit(
            "cancel", self.engine.acancel(id, cascade=cascade, compensate=compensate)
        )
        return JSONResponse(summary_json(inst))

    async def children(self, request: Request) -> Response:
        id = request.path_params["id"]
        await self._instance(id)
        kids = await self._call(self.engine.children, id)
        return JSONResponse([summary_json(k) for k in kids])

    async def history(self, request: Request) -> Response:
        id = request.path_params["id"]
        await self._instance(id)
        events, dropped, rewindable = await self._history(id)
        return JSONResponse(
            {
                "events": [history_json(e, e.seq in rewindable) for e in events],
                "dropped": dropped,
            }
        )

    async def _history(self, id: str) -> tuple[builtins.list[HistoryEvent], int, set[int]]:
        """The instance's history, its dropped count and the seqs it can be rewound to."""
        engine = self.engine

        def read() -> tuple[builtins.list[HistoryEvent], int, set[int]]:
            events = engine.history(id)
            return list(events), events.dropped, engine.rewindable(id)

        if not isinstance(engine.store, HistoryStore):  # a store of your own that keeps none
            raise Problem(501, "no-history", f"the {type(engine.store).__name__} keeps no history")
        try:
            found: tuple[builtins.list[HistoryEvent], int, set[int]] = await engine.athread(read)
        except NotFound as exc:
            raise from_error(exc) from exc
        return found

    async def rewind(self, request: Request) -> Response:
        id = request.path_params["id"]
        to = _int(request, "to", 0, 1, 2**62)
        if "to" not in request.query_params:
            raise Problem(400, "bad-query", "query parameter 'to' (a history seq) is required")
        await self._instance(id)
        inst = await self._unit("rewind", self.engine.athread(self.engine.rewind, id, to=to))
        return JSONResponse(summary_json(inst))

    async def inputs(self, request: Request) -> Response:
        query = request.query_params
        rows = await self._call(
            self.engine.inputs,
            assignee=query.get("assignee") or None,
            workflow=query.get("workflow") or None,
        )
        return JSONResponse([input_json(r) for r in rows])

    async def diagram(self, request: Request) -> Response:
        inst = await self._instance(request.path_params["id"])
        fmt = request.query_params.get("format", "svg")
        section = inst.data.definition()
        if fmt == "mermaid":
            return Response(to_mermaid(section, inst.state), media_type="text/plain")
        if fmt == "dot":
            return Response(to_dot(section, inst.state), media_type="text/vnd.graphviz")
        if fmt != "svg":
            raise Problem(400, "bad-query", f"format must be svg, mermaid or dot, got {fmt!r}")
        try:
            svg = await self.engine.athread(render_image, section, inst.state, "svg")
        except GraphvizNotFound as exc:
            raise Problem(503, "no-graphviz", str(exc)) from exc
        return Response(svg, media_type="image/svg+xml")


def _data_problems(cls: type[Any], data: dict[str, Any]) -> list[dict[str, str]]:
    """Every problem pydantic finds in ``data`` for ``cls``, with a JSON Pointer to each."""
    try:
        cls.model_validate(data)
    except ValidationError as exc:
        return [
            {"pointer": "".join(f"/{p}" for p in e["loc"]), "detail": e["msg"]}
            for e in exc.errors()
        ]
    return []

"""The web page under ``/ui``: server-rendered with Jinja2, no script, no build step.

Three pages: the instance list (filters by status, type and parent; paging), one instance
(its diagram with live thread positions, status, data, threads, children, its history
timeline with a rewind button on each event it can be rewound to, the events it waits for as
forms built from their JSON Schema by `stmtflow.http._forms`, a cancel button) and the
diagram itself as SVG. A form posts to the page's own routes, which deliver the event or
cancel through the engine, then redirect back to the instance with what happened (the
post/redirect/get pattern, so a reload does not send twice).

The templates are files of the package (``stmtflow/http/templates``), autoescaped. The page
is guarded like every route (a browser shows its own login prompt: Basic auth with a token
as the password); its posts are refused when the browser says they come from another site
(``Origin`` or ``Sec-Fetch-Site``), since a browser sends Basic credentials with any form.
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from stmtflow.errors import GraphvizNotFound, NotFound, StmtflowError
from stmtflow.http._api import Counters
from stmtflow.http._forms import FormProblem, form_fields, parse_form
from stmtflow.http._problems import Problem, from_error
from stmtflow.render import render_image
from stmtflow.runtime import Engine, HistoryEvent, Instance
from stmtflow.state import WorkflowStatus, dump_state
from stmtflow.stores._history import HistoryStore

__all__ = ["Ui"]

TEMPLATES = Path(__file__).parent / "templates"
PAGE = 25


class Ui:
    """The web page's routes over one engine."""

    def __init__(self, engine: Engine, counters: Counters) -> None:
        self.engine = engine
        self.counters = counters
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"])
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/ui/", self.list),
            Route("/ui/instances/{id}", self.instance),
            Route("/ui/instances/{id}/diagram.svg", self.diagram),
            Route("/ui/instances/{id}/events/{event}", self.send, methods=["POST"]),
            Route("/ui/instances/{id}/cancel", self.cancel, methods=["POST"]),
            Route("/ui/instances/{id}/rewind", self.rewind, methods=["POST"]),
        ]

    def _page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**context), status_code=status)

    async def _get(self, id: str) -> Instance:
        try:
            inst: Instance = await self.engine.athread(self.engine.get, id)
        except NotFound as exc:
            raise Problem(404, "not-found", str(exc)) from exc
        return inst

    async def list(self, request: Request) -> Response:
        query = request.query_params
        status = query.get("status") or None
        if status is not None and status not in {s.value for s in WorkflowStatus}:
            raise Problem(400, "bad-query", f"unknown status {status!r}")
        workflow, parent = query.get("workflow") or None, query.get("parent") or None
        offset_text = query.get("offset", "0")
        offset = int(offset_text) if offset_text.isdigit() else 0
        found = await self.engine.athread(
            self.engine.list, status, workflow, parent_id=parent, limit=PAGE + 1, offset=offset
        )
        filters = {
            k: v for k, v in (("status", status), ("workflow", workflow), ("parent", parent)) if v
        }

        def page(at: int) -> str:
            return "/ui/?" + urlencode({**filters, "offset": at})

        return self._page(
            "list.html",
            instances=found[:PAGE],
            statuses=[s.value for s in WorkflowStatus],
            workflows=sorted(self.engine.workflows()),
            filters=filters,
            offset=offset,
            newer=page(offset + PAGE) if len(found) > PAGE else None,
            older=page(max(offset - PAGE, 0)) if offset else None,
        )

    async def instance(self, request: Request) -> Response:
        id = request.path_params["id"]
        inst = await self._get(id)
        pending = await self.engine.athread(self.engine.pending, id)
        children = await self.engine.athread(self.engine.children, id)
        history = await self.engine.athread(self._history, id)
        forms = [
            (event, form_fields(event.input_schema)) for event in pending if event.type != "Timer"
        ]
        return self._page(
            "instance.html",
            inst=inst,
            data=json.dumps(json.loads(inst.data.model_dump_json()), indent=2),
            state=json.loads(dump_state(inst.state)),
            pending=pending,
            forms=forms,
            children=children,
            history=history,
            ended=inst.status.value in ("finished", "failed", "cancelled"),
            notice=request.query_params.get("notice"),
            problem=request.query_params.get("problem"),
            quote=lambda text: quote(text, safe=""),
        )

    def _history(self, id: str) -> tuple[builtins.list[HistoryEvent], int, set[int]] | None:
        """The timeline (events, dropped count, rewindable seqs); None on a store keeping none."""
        if not isinstance(self.engine.store, HistoryStore):  # a store of your own keeping none
            return None
        events = self.engine.history(id)
        return list(events), events.dropped, self.engine.rewindable(id)

    async def diagram(self, request: Request) -> Response:
        inst = await self._get(request.path_params["id"])
        try:
            svg = await self.engine.athread(render_image, inst.data.definition(), inst.state, "svg")
        except GraphvizNotFound as exc:
            raise Problem(503, "no-graphviz", str(exc)) from exc
        return Response(svg, media_type="image/svg+xml")

    def _back(self, id: str, **message: str) -> Response:
        target = f"/ui/instances/{quote(id, safe='')}?{urlencode(message)}"
        return RedirectResponse(target, status_code=303)

    async def send(self, request: Request) -> Response:
        _same_site(request)
        id, event = request.path_params["id"], request.path_params["event"]
        await self._get(id)
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        pending = await self.engine.athread(self.engine.pending, id)
        thread_id = fields.pop("_thread", None) or None
        schema = next(
            (
                p.input_schema
                for p in pending
                if p.name == event and (thread_id is None or p.thread_id == thread_id)
            ),
            None,
        )
        try:
            value = parse_form(schema, fields)
            await self.engine.asend(id, event, value, thread_id=thread_id)
        except FormProblem as exc:
            return self._back(id, problem=str(exc))
        except StmtflowError as exc:
            problem = from_error(exc)
            self.counters.count("send", failed=problem.status >= 500)
            details = "; ".join(
                f"{e['pointer'] or 'input'}: {e['detail']}" for e in problem.errors or []
            )
            return self._back(id, problem=problem.detail + (f" ({details})" if details else ""))
        self.counters.count("send", failed=False)
        return self._back(id, notice=f"sent {event}")

    async def cancel(self, request: Request) -> Response:
        _same_site(request)
        id = request.path_params["id"]
        await self._get(id)
        try:
            await self.engine.acancel(id)
        except StmtflowError as exc:
            self.counters.count("cancel", failed=from_error(exc).status >= 500)
            return self._back(id, problem=str(exc))
        self.counters.count("cancel", failed=False)
        return self._back(id, notice="cancelled")

    async def rewind(self, request: Request) -> Response:
        _same_site(request)
        id = request.path_params["id"]
        await self._get(id)
        form = await request.form()
        to = form.get("to")
        if not isinstance(to, str) or not to.isdigit():
            return self._back(id, problem="rewind needs the seq of a history event")
        try:
            await self.engine.athread(self.engine.rewind, id, to=int(to))
        except StmtflowError as exc:
            self.counters.count("rewind", failed=from_error(exc).status >= 500)
            return self._back(id, problem=str(exc))
        self.counters.count("rewind", failed=False)
        return self._back(id, notice=f"rewound to #{to}")


def _same_site(request: Request) -> None:
    """Refuse a form posted from another site (a browser sends Basic credentials with it)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Problem(403, "cross-site", "a form posted from another site is refused")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            raise Problem(403, "cross-site", "a form posted from another origin is refused")

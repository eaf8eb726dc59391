"""`create_app`: the ASGI application — JSON routes, web page, metrics, behind one guard.

The layers of a request, outside in: the body-size limit (413 before a large body is read
into memory), the credential check (`stmtflow.http._auth`: nothing but ``/healthz`` answers
without one), then the routes. Every error leaves as a problem (`stmtflow.http._problems`):
Starlette's own 404 and 405 too, and an unexpected exception as a bare 500 whose traceback goes
to the ``stmtflow.http`` logger only.

Example:
    >>> import stmtflow as sf
    >>> from starlette.testclient import TestClient
    >>> app = create_app(sf.Engine("memory://"), auth={"t0ken"})
    >>> client = TestClient(app)
    >>> client.get("/healthz").json(), client.get("/instances").status_code
    ({'status': 'ok'}, 401)
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stmtflow.errors import StmtflowError
from stmtflow.http._api import Api, Counters
from stmtflow.http._auth import Auth, AuthMiddleware
from stmtflow.http._metrics import CONTENT_TYPE, render
from stmtflow.http._openapi import openapi
from stmtflow.http._problems import Problem, from_error, problem_response, unexpected
from stmtflow.http._ui import Ui
from stmtflow.runtime import Engine

__all__ = ["MAX_BODY", "create_app"]

MAX_BODY = 1024 * 1024
"""The largest request body accepted by default (1 MiB)."""


class BodyLimit:
    """Refuse a request body larger than ``limit`` bytes with a 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = Problem(413, "too-large", f"the request body exceeds {self.limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await problem_response(too_large, Request(scope))(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise too_large
            return message

        await self.app(scope, counted, send)


def create_app(
    engine: Engine,
    *,
    auth: Auth = None,
    callback_secret: str | bytes | None = None,
    max_body: int = MAX_BODY,
) -> Starlette:
    """The HTTP service over ``engine`` as an ASGI app (serve it with uvicorn).

    Args:
        engine: the engine whose registered workflows and store the service exposes.
        auth: a set of bearer tokens, or a callable ``(request) -> bool`` (may be async)
            deciding whether a request may pass; None: no check (a service on loopback, or
            behind a proxy that checks). Without a valid credential only ``/healthz``
            answers.
        callback_secret: the key of signed callback URLs (`sign_callback`); None turns the
            ``/callbacks`` route off.
        max_body: the largest request body accepted, in bytes (larger: 413).
    """
    counters = Counters()
    api = Api(engine, counters, callback_secret)
    ui = Ui(engine, counters)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def spec(request: Request) -> Response:
        return JSONResponse(openapi(engine.workflows(), secured=auth is not None))

    async def metrics(request: Request) -> Response:
        text = await engine.athread(render, engine, counters)
        return Response(text, media_type=CONTENT_TYPE)

    async def home(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=303)

    routes: list[BaseRoute] = [
        Route("/", home),
        Route("/healthz", health),
        Route("/openapi.json", spec),
        Route("/metrics", metrics),
        *api.routes(),
        *ui.routes(),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(BodyLimit, limit=max_body), Middleware(AuthMiddleware, auth=auth)],
        exception_handlers={
            Problem: _problem,
            StmtflowError: _library_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request)


async def _library_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StmtflowError)
    return problem_response(from_error(exc), request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    names = {404: "not-found", 405: "method-not-allowed"}
    problem = Problem(exc.status_code, names.get(exc.status_code, "http"), str(exc.detail))
    problem.headers.update(exc.headers or {})
    return problem_response(problem, request)


async def _unexpected(request: Request, exc: Exception) -> Response:
    return problem_response(unexpected(exc, request), request)

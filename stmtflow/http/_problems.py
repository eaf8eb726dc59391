"""Errors as RFC 9457 problem details (``application/problem+json``), and no stack traces.

Every refusal the service answers with is a `Problem`: an HTTP status, a ``type`` URI naming
the kind of problem (``urn:stmtflow:problem:<name>``, stable for clients to switch on), a
``title``, a ``detail`` saying what was wrong, and for a refused input ``errors``: every
problem, each with the place in the input (a JSON Pointer) and the message. The mapping from
the library's errors lives here, in one table, so a route never picks a status of its own.

What is not a `StmtflowError` (a bug, a database gone away) is logged with its traceback and
answered with a bare 500: the traceback stays in the log, never in the response.

Example:
    >>> import stmtflow as sf
    >>> problem = from_error(sf.NotFound("no instance 'x'"))
    >>> problem.status, problem.type
    (404, 'urn:stmtflow:problem:not-found')
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from stmtflow.errors import (
    AmbiguousCallback,
    CallbackInputError,
    ConflictError,
    DefinitionMismatch,
    HandlerError,
    NotFound,
    NotWaiting,
    RewindError,
    StaleCallback,
    StmtflowError,
    UnknownCallback,
    WorkflowFinished,
)

__all__ = ["MEDIA_TYPE", "Problem", "from_error", "problem_response", "unexpected"]

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("stmtflow.http")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    501: "Not Implemented",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """A refusal to answer with: status, problem name, detail and optional extensions."""

    def __init__(
        self, status: int, name: str, detail: str, *, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.name = name
        self.detail = detail
        self.errors = errors
        self.headers: dict[str, str] = {}

    @property
    def type(self) -> str:
        return f"urn:stmtflow:problem:{self.name}"

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        if self.errors is not None:
            body["errors"] = self.errors
        return body


# (error class, status, problem name), first match wins: subclasses before their bases.
_MAPPING: tuple[tuple[type[StmtflowError], int, str], ...] = (
    (NotFound, 404, "not-found"),
    (CallbackInputError, 422, "invalid-input"),
    (HandlerError, 422, "handler-refused"),
    (UnknownCallback, 409, "not-awaited"),
    (StaleCallback, 409, "stale-event"),
    (NotWaiting, 409, "not-waiting"),
    (AmbiguousCallback, 409, "ambiguous-event"),
    (WorkflowFinished, 409, "workflow-ended"),
    (ConflictError, 409, "busy"),
    (DefinitionMismatch, 409, "definition-mismatch"),
    (RewindError, 409, "rewind-refused"),
)


def from_error(exc: StmtflowError) -> Problem:
    """The problem a library error is answered with (a 500 for errors met while running)."""
    for cls, status, name in _MAPPING:
        if isinstance(exc, cls):
            if isinstance(exc, CallbackInputError):
                detail = str(exc).split(":\n", 1)[0]
                return Problem(status, name, detail, errors=[_pointed(p) for p in exc.problems])
            return Problem(status, name, str(exc))
    return Problem(500, "workflow-error", str(exc))


def _pointed(problem: str) -> dict[str, str]:
    """``"items/0/qty: -1 is less than 1"`` as a JSON Pointer (``/items/0/qty``) and a message."""
    where, sep, message = problem.partition(": ")
    if not sep:
        return {"pointer": "", "detail": problem}
    pointer = "" if where == "(input)" else "/" + where
    return {"pointer": pointer, "detail": message}


def unexpected(exc: BaseException, request: Request) -> Problem:
    """A bug or an outage: logged with its traceback, answered without one."""
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return Problem(500, "internal", "the server met an unexpected error; it has been logged")


def problem_response(problem: Problem, request: Request | None = None) -> Response:
    instance = None if request is None else request.url.path
    return Response(
        json.dumps(problem.body(instance)),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=problem.headers,
    )

"""Who may ask: bearer tokens or a callable, and signed callback URLs for webhooks.

Without a valid credential nothing answers but ``/healthz``: the check is a middleware in
front of every route (the web page, ``/openapi.json`` and ``/metrics`` included), so a route
added later is covered without a line of its own. A credential is one of:

- ``Authorization: Bearer <token>`` with one of the configured tokens (compared in constant
  time), or whatever the configured callable accepts;
- ``Authorization: Basic`` with a token as the password (any user name): what a browser sends
  after its own login prompt, so the web page needs no login route of its own;
- for ``/callbacks/...`` only, a signed URL (`sign_callback`): an HMAC-SHA256, under the
  app's callback secret, over the instance id, the event and the expiry time. A webhook
  provider is handed the URL and needs no token; a changed id, event or expiry, a wrong
  signature, or an expired URL is refused.

Example:
    >>> from datetime import UTC, datetime
    >>> url = sign_callback("s3cret", "order-1", "paid", expires=datetime(2030, 1, 1, tzinfo=UTC))
    >>> url.split("?")[0]
    '/callbacks/order-1/paid'
    >>> verify_callback("s3cret", "order-1", "paid", url.split("expires=")[1].split("&")[0],
    ...                 url.split("sig=")[1], now=datetime(2029, 1, 1, tzinfo=UTC))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import inspect
import json
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from stmtflow.http._problems import Problem, problem_response

__all__ = ["Auth", "AuthMiddleware", "sign_callback", "verify_callback"]

Auth = Collection[str] | Callable[[Request], bool] | Callable[[Request], Awaitable[bool]] | None
"""What `create_app` takes as ``auth``: bearer tokens, a (possibly async) check, or None."""

OPEN_PATHS = frozenset({"/healthz"})
CALLBACK_PREFIX = "/callbacks/"


def _payload(instance_id: str, event: str, expires: int) -> bytes:
    # JSON keeps the three fields apart whatever characters an id or event holds.
    return json.dumps([instance_id, event, expires], separators=(",", ":")).encode()


def _signature(secret: str | bytes, instance_id: str, event: str, expires: int) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, _payload(instance_id, event, expires), hashlib.sha256).hexdigest()


def sign_callback(
    secret: str | bytes,
    instance_id: str,
    event: str,
    *,
    expires: datetime | timedelta = timedelta(days=7),
    base_url: str = "",
) -> str:
    """A URL that delivers ``event`` to ``instance_id`` without a bearer token, until ``expires``.

    ``secret`` is the one given to `create_app` as ``callback_secret``; ``expires`` an aware
    time or a time from now; ``base_url`` (``https://flows.example.com``) is put in front of
    the path. POST the event's input as the JSON body to the URL.
    """
    if isinstance(expires, timedelta):
        expires = datetime.now(UTC) + expires
    if expires.tzinfo is None:
        raise ValueError("expires must be an aware datetime, e.g. datetime.now(UTC)")
    stamp = int(expires.timestamp())
    query = urlencode({"expires": stamp, "sig": _signature(secret, instance_id, event, stamp)})
    path = f"{CALLBACK_PREFIX}{quote(instance_id, safe='')}/{quote(event, safe='')}"
    return f"{base_url.rstrip('/')}{path}?{query}"


def verify_callback(
    secret: str | bytes | None,
    instance_id: str,
    event: str,
    expires: str | None,
    signature: str | None,
    *,
    now: datetime | None = None,
) -> None:
    """Refuse (`Problem` 403) a callback URL whose signature does not fit or that expired."""
    if secret is None:
        raise Problem(404, "not-found", "signed callbacks are not configured on this service")
    if not expires or not signature or not expires.isdigit():
        raise Problem(403, "bad-signature", "the callback URL lacks its expiry or signature")
    stamp = int(expires)
    expected = _signature(secret, instance_id, event, stamp)
    if not hmac.compare_digest(expected, signature):
        raise Problem(403, "bad-signature", "the callback URL's signature does not match")
    moment = now or datetime.now(UTC)
    if moment.timestamp() > stamp:
        raise Problem(403, "expired", "the callback URL has expired")


class AuthMiddleware:
    """Refuse, with a 401 problem, every request without a valid credential but the open ones."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        if auth is None or callable(auth):
            self.check: Any = auth
            self.tokens: tuple[bytes, ...] = ()
        else:
            if isinstance(auth, str):
                raise TypeError("auth must be a set of tokens or a callable, not one string")
            self.check = None
            self.tokens = tuple(t.encode() for t in auth)
            if not self.tokens:
                raise ValueError("auth is an empty set of tokens: no request could pass")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.check is None and not self.tokens):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in OPEN_PATHS or path.startswith(CALLBACK_PREFIX):
            await self.app(scope, receive, send)  # the callback route checks its signature
            return
        request = Request(scope)
        if await self._allowed(request):
            await self.app(scope, receive, send)
            return
        problem = Problem(401, "unauthorized", "a valid bearer token is required")
        realm = 'Basic realm="stmtflow"' if path.startswith("/ui") else "Bearer"
        problem.headers["WWW-Authenticate"] = realm
        await problem_response(problem, request)(scope, receive, send)

    async def _allowed(self, request: Request) -> bool:
        if self.check is not None:
            verdict = self.check(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            return verdict is True
        presented = _presented(request.headers.get("authorization", ""))
        if presented is None:
            return False
        # Every token compared, in constant time, so the time taken says nothing.
        return any([hmac.compare_digest(presented, token) for token in self.tokens])


def _presented(header: str) -> bytes | None:
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value:
        return value.strip().encode()
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        _, sep, password = decoded.partition(b":")
        return password if sep else None
    return None

"""The HTTP service and web page: `create_app` (an ASGI app), `sign_callback` for webhooks.

Needs the ``http`` extra (``pip install 'stmtflow[http]'``). ``stmtflow serve`` runs the app
with uvicorn; docs/http.md lists every route.

Example:
    >>> import stmtflow as sf
    >>> from stmtflow.http import create_app
    >>> app = create_app(sf.Engine("memory://"))
    >>> [r.path for r in app.routes][:3]
    ['/', '/healthz', '/openapi.json']
"""

from __future__ import annotations

try:
    import jinja2 as _jinja2  # noqa: F401
    import starlette as _starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the HTTP service needs Starlette and Jinja2: pip install 'stmtflow[http]'"
    ) from exc

from stmtflow.http._app import MAX_BODY, create_app
from stmtflow.http._auth import sign_callback

__all__ = ["MAX_BODY", "create_app", "sign_callback"]

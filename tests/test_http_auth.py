"""Security of the HTTP service: without a valid credential only ``/healthz`` answers, on
every route the app has; signed callback URLs deliver without a token, and a tampered or
expired one is refused with nothing stored."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient

import stmtflow as sf
from stmtflow.http import create_app, sign_callback
from tests.http_flows import Order

TOKEN = "t0ken-for-tests"
SECRET = "callback-secret"


@pytest.fixture
def engine() -> Iterator[sf.Engine]:
    with sf.Engine("memory://", workflows=[Order]) as eng:
        eng.start(Order, id="o-1")
        yield eng


def every_request(app: Any) -> list[tuple[str, str]]:
    """(method, path) for every route of ``app``, its parameters filled with a real id."""
    found = []
    for route in app.routes:
        assert isinstance(route, Route), route
        path = re.sub(r"\{id\}", "o-1", route.path)
        path = path.replace("{workflow}", "Order").replace("{event}", "withdraw")
        assert "{" not in path, path
        for method in sorted(route.methods or {"GET"}):
            if method != "HEAD":
                found.append((method, path))
    return found


def test_every_route_but_healthz_refuses_a_request_without_a_token(engine: sf.Engine) -> None:
    app = create_app(engine, auth={TOKEN}, callback_secret=SECRET)
    client = TestClient(app)
    requests = every_request(app)
    assert len(requests) >= 18  # the JSON routes, the page, openapi, metrics, callbacks
    before = engine.store.get("o-1")
    for method, path in requests:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic !!"}):
            answer = client.request(method, path, headers=headers, follow_redirects=False)
            if path == "/healthz":
                assert answer.status_code == 200
            elif path.startswith("/callbacks/"):
                assert answer.status_code == 403, (method, path)  # no signature: refused
            else:
                assert answer.status_code == 401, (method, path, answer.status_code)
                assert answer.headers["content-type"] == "application/problem+json"
                assert "o-1" not in answer.text.replace(path, "")  # nothing about the instance
    after = engine.store.get("o-1")
    assert (after.version, after.data, after.state) == (before.version, before.data, before.state)


def test_every_route_answers_with_a_valid_token(engine: sf.Engine) -> None:
    app = create_app(engine, auth={TOKEN, "other"}, callback_secret=SECRET)
    client = TestClient(app)
    for method, path in every_request(app):
        if method != "GET":
            continue
        answer = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code not in (401, 403), (path, answer.text)


def test_the_page_takes_the_token_as_a_basic_password(engine: sf.Engine) -> None:
    client = TestClient(create_app(engine, auth={TOKEN}))
    refused = client.get("/ui/")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="stmtflow"'
    basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    assert client.get("/ui/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    wrong = base64.b64encode(b"anyone:nope").decode()
    assert client.get("/ui/", headers={"Authorization": f"Basic {wrong}"}).status_code == 401


def test_a_callable_decides(engine: sf.Engine) -> None:
    seen: list[str] = []

    def allow(request: Request) -> bool:
        seen.append(request.url.path)
        return request.headers.get("x-team") == "ops"

    client = TestClient(create_app(engine, auth=allow))
    assert client.get("/instances").status_code == 401
    assert client.get("/instances", headers={"x-team": "ops"}).status_code == 200
    assert client.get("/healthz").status_code == 200
    assert seen == ["/instances", "/instances"]

    async def allow_async(request: Request) -> bool:
        return request.headers.get("x-team") == "ops"

    client = TestClient(create_app(engine, auth=allow_async))
    assert client.get("/instances").status_code == 401
    assert client.get("/instances", headers={"x-team": "ops"}).status_code == 200


def test_auth_settings_that_let_nobody_in_are_refused(engine: sf.Engine) -> None:
    with pytest.raises(ValueError, match="empty set"):
        TestClient(create_app(engine, auth=set())).get("/healthz")
    with pytest.raises(TypeError, match="one string"):
        TestClient(create_app(engine, auth=TOKEN)).get("/healthz")


def test_a_signed_callback_delivers_without_a_token(engine: sf.Engine) -> None:
    client = TestClient(create_app(engine, auth={TOKEN}, callback_secret=SECRET))
    url = sign_callback(SECRET, "o-1", "withdraw", expires=timedelta(minutes=5))
    answer = client.post(url)
    assert answer.status_code == 200, answer.text
    inst = engine.get("o-1")
    assert isinstance(inst.data, Order)
    assert inst.data.log == ["reserve", "withdrawn"]
    shipped = sign_callback(SECRET, "o-1", "shipped", base_url="https://flows.example.com/")
    assert shipped.startswith("https://flows.example.com/callbacks/o-1/shipped?expires=")
    answer = client.post(shipped.removeprefix("https://flows.example.com"), json="t-9")
    assert answer.json()["output"] == "T-9"


def test_a_tampered_or_expired_callback_is_refused_and_changes_nothing(engine: sf.Engine) -> None:
    client = TestClient(create_app(engine, auth={TOKEN}, callback_secret=SECRET))
    engine.start(Order, id="o-2")
    good = sign_callback(SECRET, "o-1", "withdraw", expires=timedelta(minutes=5))
    path, query = good.split("?")
    expires = re.search(r"expires=(\d+)", query)
    assert expires is not None
    later = str(int(expires.group(1)) + 3600)
    tampered = [
        good.replace("/o-1/", "/o-2/"),  # another instance
        good.replace("/withdraw?", "/decide?"),  # another event
        f"{path}?{query.replace(expires.group(1), later)}",  # a later expiry
        good[:-4] + ("0000" if not good.endswith("0000") else "1111"),  # another signature
        path,  # no signature at all
        sign_callback("other-secret", "o-1", "withdraw"),  # signed with another key
    ]
    expired = sign_callback(SECRET, "o-1", "withdraw", expires=datetime.now(UTC) - timedelta(1))
    before = {id: engine.store.get(id) for id in ("o-1", "o-2")}
    for url in tampered:
        answer = client.post(url)
        assert answer.status_code == 403, url
        assert answer.json()["type"] == "urn:stmtflow:problem:bad-signature"
    answer = client.post(expired)
    assert answer.status_code == 403
    assert answer.json()["type"] == "urn:stmtflow:problem:expired"
    for id, rec in before.items():
        now = engine.store.get(id)
        assert (now.version, now.data, now.state) == (rec.version, rec.data, rec.state)


def test_callbacks_are_off_without_a_secret(engine: sf.Engine) -> None:
    client = TestClient(create_app(engine))
    answer = client.post(sign_callback(SECRET, "o-1", "withdraw"))
    assert answer.status_code == 404
    assert engine.store.get("o-1").version == 2

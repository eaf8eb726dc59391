"""The JSON routes of `stmtflow.http.create_app` (DESIGN §11), on memory, SQLite and PostgreSQL.

Each refusal is a problem+json answer and leaves the stored record exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate
from starlette.testclient import TestClient

import stmtflow as sf
from stmtflow.http import create_app
from tests.http_flows import Order, Parent

PROBLEM = "application/problem+json"


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[sf.Engine]:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'http.db'}"
    else:
        url = "memory://"
    with sf.Engine(url, workflows=[Order, Parent]) as eng:
        yield eng


@pytest.fixture
def client(engine: sf.Engine) -> TestClient:
    return TestClient(create_app(engine), raise_server_exceptions=False)


def stored(engine: sf.Engine, id: str) -> tuple[int, str, str]:
    rec = engine.store.get(id)
    return rec.version, rec.data, rec.state


def problem(response: Any, status: int, name: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:stmtflow:problem:{name}"
    assert body["status"] == status
    return body


DECISION = {"approved": True, "reviewer": "ann", "level": "high", "amount": 12}


def test_start_is_idempotent_by_id(client: TestClient, engine: sf.Engine) -> None:
    first = client.post("/workflows/Order/instances", json={"id": "o-1", "data": {"item": "pen"}})
    assert first.status_code == 201
    assert first.headers["location"] == "/instances/o-1"
    assert first.json()["status"] == "waiting"
    again = client.post("/workflows/Order/instances", json={"id": "o-1", "data": {"item": "x"}})
    assert again.status_code == 200
    assert again.json()["version"] == first.json()["version"]
    inst = engine.get("o-1")
    assert isinstance(inst.data, Order)
    assert (inst.data.item, inst.data.log) == ("pen", ["reserve"])
    # The same id for another type is refused, the instance untouched.
    before = stored(engine, "o-1")
    problem(client.post("/workflows/Parent/instances", json={"id": "o-1"}), 409, "id-taken")
    assert stored(engine, "o-1") == before
    # No id: a fresh one each time.
    made = client.post("/workflows/Order/instances").json()
    assert made["id"] != "o-1"


def test_start_refusals_store_nothing(client: TestClient, engine: sf.Engine) -> None:
    problem(client.post("/workflows/Nope/instances", json={}), 404, "not-found")
    bad = problem(
        client.post("/workflows/Order/instances", json={"data": {"item": 3, "log": "x"}}),
        422,
        "invalid-input",
    )
    assert {e["pointer"] for e in bad["errors"]} == {"/item", "/log"}
    problem(client.post("/workflows/Order/instances", json={"idd": "x"}), 422, "invalid-input")
    problem(
        client.post(
            "/workflows/Order/instances",
            content=b"{nope",
            headers={"content-type": "application/json"},
        ),
        400,
        "malformed-json",
    )
    assert engine.list() == []


def test_list_filters_and_pages(client: TestClient, engine: sf.Engine) -> None:
    for n in range(5):
        client.post("/workflows/Order/instances", json={"id": f"o-{n}"})
    client.post("/workflows/Parent/instances", json={"id": "p-1"})
    client.post("/instances/o-0/cancel")
    seen, offset = [], 0
    while offset is not None:
        page = client.get("/instances", params={"workflow": "Order", "limit": 2, "offset": offset})
        body = page.json()
        assert len(body["items"]) <= 2
        seen += [i["id"] for i in body["items"]]
        offset = body["next_offset"]
    assert seen == [*(f"o-{n}" for n in range(5)), "child-of-parent"]
    cancelled = client.get("/instances", params={"status": "cancelled"}).json()["items"]
    assert [i["id"] for i in cancelled] == ["o-0"]
    kids = client.get("/instances", params={"parent": "p-1"}).json()["items"]
    assert [(i["id"], i["parent_id"]) for i in kids] == [("child-of-parent", "p-1")]
    problem(client.get("/instances", params={"status": "sleepy"}), 400, "bad-query")
    problem(client.get("/instances", params={"limit": 0}), 400, "bad-query")


def test_get_shows_data_state_and_pending(client: TestClient) -> None:
    client.post("/workflows/Order/instances", json={"id": "o-1"})
    body = client.get("/instances/o-1").json()
    assert body["data"] == {"item": "book", "log": ["reserve"]}
    assert body["state"]["threads"][0]["cur_step"] == "review"
    assert [p["name"] for p in body["pending"]] == ["decide", "withdraw"]
    events = client.get("/instances/o-1/events").json()
    decide = events[0]
    assert (decide["prompt"], decide["assignee"], decide["type"]) == (
        "approve the order?",
        "ops",
        "HumanInput",
    )
    assert decide["input_schema"]["required"] == ["approved", "reviewer", "amount"]
    for path in ("", "/events", "/children", "/diagram"):
        problem(client.get(f"/instances/nope{path}"), 404, "not-found")


def test_deliver_validates_against_the_schema_listing_every_problem(
    client: TestClient, engine: sf.Engine
) -> None:
    client.post("/workflows/Order/instances", json={"id": "o-1"})
    before = stored(engine, "o-1")
    bad = problem(
        client.post(
            "/instances/o-1/events/decide", json={"reviewer": "", "amount": -1, "level": "x"}
        ),
        422,
        "invalid-input",
    )
    pointers = sorted(e["pointer"] for e in bad["errors"])
    assert pointers == ["", "/amount", "/level", "/reviewer"]  # "" : approved is missing
    assert any("approved" in e["detail"] for e in bad["errors"] if e["pointer"] == "")
    problem(client.post("/instances/o-1/events/shipped", json="T1"), 409, "not-awaited")
    problem(client.post("/instances/o-1/events/decide", content=b"{"), 400, "malformed-json")
    problem(client.post("/instances/nope/events/decide", json=DECISION), 404, "not-found")
    problem(
        client.post("/workflows/Parent/instances/o-1/events/decide", json=DECISION),
        404,
        "not-found",
    )
    problem(
        client.post("/instances/o-1/events/decide?buffer=maybe", json=DECISION), 400, "bad-query"
    )
    assert stored(engine, "o-1") == before
    ok = client.post("/workflows/Order/instances/o-1/events/decide", json=DECISION)
    assert ok.status_code == 200, ok.text
    assert ok.json()["instance"]["status"] == "waiting"
    shipped = client.post("/instances/o-1/events/shipped", json="t-1").json()
    assert shipped["output"] == "T-1"
    assert shipped["instance"]["status"] == "finished"
    inst = engine.get("o-1")
    assert isinstance(inst.data, Order)
    assert inst.data.log == ["reserve", "decided True by ann", "shipped t-1"]
    problem(client.post("/instances/o-1/events/shipped", json="t-2"), 409, "workflow-ended")


def test_a_keyed_send_is_delivered_once(client: TestClient, engine: sf.Engine) -> None:
    client.post("/workflows/Order/instances", json={"id": "o-1"})
    for _ in range(2):
        answer = client.post("/instances/o-1/events/withdraw?key=k1")
        assert answer.status_code == 200
    inst = engine.get("o-1")
    assert isinstance(inst.data, Order)
    assert inst.data.log == ["reserve", "withdrawn"]


def test_cancel_children_inputs_and_diagram(client: TestClient, engine: sf.Engine) -> None:
    client.post("/workflows/Parent/instances", json={"id": "p-1"})
    kids = client.get("/instances/p-1/children").json()
    assert [(k["id"], k["workflow"], k["status"]) for k in kids] == [
        ("child-of-parent", "Order", "waiting")
    ]
    rows = client.get("/inputs", params={"assignee": "ops"}).json()
    assert [(r["instance_id"], r["event"], r["workflow"]) for r in rows] == [
        ("child-of-parent", "decide", "Order")
    ]
    assert client.get("/inputs", params={"assignee": "bob"}).json() == []
    mermaid = client.get("/instances/child-of-parent/diagram", params={"format": "mermaid"})
    assert mermaid.text.startswith("flowchart TD")
    assert "review" in mermaid.text
    svg = client.get("/instances/child-of-parent/diagram")
    if svg.status_code == 503:
        pytest.skip("Graphviz's dot is not installed") if not _ci() else pytest.fail(svg.text)
    assert svg.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in svg.content
    problem(client.get("/instances/p-1/diagram", params={"format": "gif"}), 400, "bad-query")
    cancelled = client.post("/instances/p-1/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert engine.get("child-of-parent").status is sf.WorkflowStatus.CANCELLED
    before = stored(engine, "p-1")
    problem(client.post("/instances/p-1/cancel"), 409, "workflow-ended")
    problem(client.post("/instances/nope/cancel"), 404, "not-found")
    assert stored(engine, "p-1") == before


def _ci() -> bool:
    import os

    return bool(os.environ.get("CI"))


def test_an_unexpected_error_is_a_bare_500_without_a_traceback(
    client: TestClient, engine: sf.Engine, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    def broken(id: str) -> None:
        raise RuntimeError("secret connection string postgres://admin:pw@db")

    monkeypatch.setattr(engine, "get", broken)
    with caplog.at_level("ERROR", logger="stmtflow.http"):
        answer = client.get("/instances/o-1")
    body = problem(answer, 500, "internal")
    assert "Traceback" not in answer.text and "secret" not in answer.text
    assert body["detail"] == "the server met an unexpected error; it has been logged"
    assert "secret connection string" in caplog.text  # the log keeps it


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    problem(client.get("/nowhere"), 404, "not-found")
    problem(client.delete("/instances"), 405, "method-not-allowed")


def test_the_body_size_is_limited(engine: sf.Engine) -> None:
    client = TestClient(create_app(engine, max_body=200))
    client.post("/workflows/Order/instances", json={"id": "o-1"})
    before = stored(engine, "o-1")
    big = {"approved": True, "reviewer": "x" * 500, "amount": 1}
    problem(client.post("/instances/o-1/events/decide", json=big), 413, "too-large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"approved": true, "amount": 1, "reviewer": "'
        for _ in range(10):
            yield b"y" * 50
        yield b'"}'

    problem(client.post("/instances/o-1/events/decide", content=chunks()), 413, "too-large")
    assert stored(engine, "o-1") == before


def test_openapi_describes_every_event_with_its_schema_and_validates(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    validate(spec)
    paths = spec["paths"]
    decide = paths["/workflows/Order/instances/{id}/events/decide"]["post"]
    assert decide["operationId"] == "send_Order_decide"
    schema = decide["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["approved", "reviewer", "amount"]
    assert paths["/workflows/Order/instances/{id}/events/shipped"]["post"]["requestBody"][
        "content"
    ]["application/json"]["schema"] == {"type": "string"}
    start = paths["/workflows/Order/instances"]["post"]["requestBody"]["content"]
    assert start["application/json"]["schema"]["properties"]["data"]["properties"]["item"] == {
        "default": "book",
        "title": "Item",
        "type": "string",
    }
    assert "/workflows/Parent/instances" in paths
    # Every $ref points into the document.
    text = json.dumps(spec)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in spec["components"]["schemas"]


def test_metrics_count_instances_units_failures_and_backlog(client: TestClient) -> None:
    client.post("/workflows/Order/instances", json={"id": "o-1"})
    client.post("/workflows/Order/instances", json={"id": "o-2"})
    client.post("/instances/o-2/cancel")
    client.post("/instances/o-1/events/decide", json={})  # refused: not a failure
    text = client.get("/metrics").text
    assert 'stmtflow_instances{status="waiting",workflow="Order"} 1.0' in text
    assert 'stmtflow_instances{status="cancelled",workflow="Order"} 1.0' in text
    assert 'stmtflow_units_total{kind="start"} 2.0' in text
    assert 'stmtflow_units_total{kind="send"} 1.0' in text
    assert 'stmtflow_unit_failures_total{kind="send"} 0.0' in text
    assert "stmtflow_due_instances 0.0" in text
    assert "stmtflow_pending_inputs 1.0" in text


def test_a_scrape_counts_instances_without_reading_records(
    engine: sf.Engine, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.post("/workflows/Order/instances", json={"id": "o-1"})

    def listing(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a scrape read every record")

    monkeypatch.setattr(engine.store, "list", listing)
    text = client.get("/metrics").text
    assert 'stmtflow_instances{status="waiting",workflow="Order"} 1.0' in text


def test_workflows_lists_types_with_their_events(client: TestClient) -> None:
    types = {w["name"]: w for w in client.get("/workflows").json()}
    assert sorted(types) == ["Order", "Parent"]
    assert [e["name"] for e in types["Order"]["events"]] == ["decide", "withdraw", "shipped"]


def test_history_and_rewind(client: TestClient, engine: sf.Engine) -> None:
    client.post("/workflows/Order/instances", json={"id": "o-1"})
    client.post("/instances/o-1/events/decide", json=DECISION)
    body = client.get("/instances/o-1/history").json()
    kinds = [e["kind"] for e in body["events"]]
    assert kinds[0] == "started" and "event_delivered" in kinds
    assert body["dropped"] == 0
    delivered = next(e for e in body["events"] if e["kind"] == "event_delivered")
    assert delivered["name"] == "decide"
    started = body["events"][0]
    problem(client.get("/instances/nope/history"), 404, "not-found")
    problem(client.post("/instances/o-1/rewind"), 400, "bad-query")
    problem(client.post("/instances/nope/rewind?to=1"), 404, "not-found")
    before = stored(engine, "o-1")
    problem(client.post("/instances/o-1/rewind?to=999"), 409, "rewind-refused")
    assert stored(engine, "o-1") == before
    target = next(e for e in body["events"] if e["rewindable"] and e["seq"] < delivered["seq"])
    assert target["seq"] >= started["seq"]
    rewound = client.post(f"/instances/o-1/rewind?to={target['seq']}")
    assert rewound.status_code == 200, rewound.text
    inst = engine.get("o-1")
    assert isinstance(inst.data, Order)
    assert "decided True by ann" not in inst.data.log
    after = client.get("/instances/o-1/history").json()["events"]
    assert after[-1]["kind"] == "rewound"

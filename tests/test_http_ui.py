"""The web page's routes without a browser (the browser test is tests/test_http_browser.py):
filters and paging, forms built from JSON Schema and read back, cancel, cross-site refusal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import stmtflow as sf
from stmtflow.http import create_app
from stmtflow.http._forms import FormProblem, form_fields, parse_form
from tests.http_flows import Decision, Order


@pytest.fixture
def engine() -> Iterator[sf.Engine]:
    with sf.Engine("memory://", workflows=[Order]) as eng:
        yield eng


@pytest.fixture
def client(engine: sf.Engine) -> TestClient:
    return TestClient(create_app(engine), follow_redirects=False)


def ids_on(html: str) -> list[str]:
    return [part.split('"')[0] for part in html.split('href="/ui/instances/')[1:]]


def test_the_list_filters_and_pages(client: TestClient, engine: sf.Engine) -> None:
    for n in range(30):
        engine.start(Order, id=f"o-{n:02d}")
    engine.cancel("o-03")
    first = client.get("/ui/").text
    assert ids_on(first) == [f"o-{n:02d}" for n in range(25)]
    assert 'id="newer"' in first and 'id="older"' not in first
    second = client.get("/ui/?offset=25").text
    assert ids_on(second) == [f"o-{n:02d}" for n in range(25, 30)]
    assert 'id="older"' in second and 'id="newer"' not in second
    assert ids_on(client.get("/ui/?status=cancelled").text) == ["o-03"]
    assert ids_on(client.get("/ui/?workflow=Nope").text) == []
    assert client.get("/ui/?status=sleepy").status_code == 400


def test_the_instance_page_shows_forms_built_from_the_schema(
    client: TestClient, engine: sf.Engine
) -> None:
    engine.start(Order, id="o-1")
    html = client.get("/ui/instances/o-1").text
    assert "approve the order?" in html and "for ops" in html
    assert 'type="checkbox" name="approved"' in html
    assert '<select name="level"' in html and '<option value="high"' in html
    assert 'name="amount"' in html and 'type="number"' in html
    assert 'data-event="withdraw"' in html
    assert 'id="cancel"' in html
    assert client.get("/ui/instances/nope").status_code == 404


def test_a_submitted_form_is_delivered_and_a_refusal_shown(
    client: TestClient, engine: sf.Engine
) -> None:
    engine.start(Order, id="o-1")
    before = engine.store.get("o-1").version
    refused = client.post(
        "/ui/instances/o-1/events/decide", data={"reviewer": "", "amount": "2", "_thread": "_main_"}
    )
    assert refused.status_code == 303
    shown = client.get(refused.headers["location"]).text
    assert 'id="problem"' in shown and "invalid input for event" in shown
    bad_number = client.post("/ui/instances/o-1/events/decide", data={"amount": "two"})
    assert "is not a valid integer" in client.get(bad_number.headers["location"]).text
    assert engine.store.get("o-1").version == before
    sent = client.post(
        "/ui/instances/o-1/events/decide",
        data={"approved": "on", "reviewer": "kim", "level": "high", "amount": "7"},
    )
    assert "sent decide" in client.get(sent.headers["location"]).text
    inst = engine.get("o-1")
    assert isinstance(inst.data, Order)
    assert inst.data.log[-1] == "decided True by kim"


def test_cancel_from_the_page(client: TestClient, engine: sf.Engine) -> None:
    engine.start(Order, id="o-1")
    answer = client.post("/ui/instances/o-1/cancel")
    assert answer.status_code == 303
    assert engine.get("o-1").status is sf.WorkflowStatus.CANCELLED
    page = client.get(answer.headers["location"]).text
    assert "cancelled" in page and 'id="cancel"' not in page


def test_a_form_posted_from_another_site_is_refused(client: TestClient, engine: sf.Engine) -> None:
    engine.start(Order, id="o-1")
    before = engine.store.get("o-1").version
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        assert client.post("/ui/instances/o-1/cancel", headers=headers).status_code == 403
        answer = client.post("/ui/instances/o-1/events/withdraw", headers=headers)
        assert answer.status_code == 403
    assert engine.store.get("o-1").version == before
    same = client.post("/ui/instances/o-1/cancel", headers={"Origin": "http://testserver"})
    assert same.status_code == 303


def test_form_fields_and_parsing_follow_the_schema() -> None:
    schema = Decision.model_json_schema()
    fields = {f.name: f for f in form_fields(schema)}
    assert {n: f.widget for n, f in fields.items()} == {
        "approved": "checkbox",
        "reviewer": "text",
        "level": "select",
        "amount": "integer",
    }
    assert fields["level"].options == ("low", "high")
    assert fields["amount"].required and not fields["level"].required
    assert parse_form(schema, {"reviewer": "a", "amount": "3", "level": "high"}) == {
        "approved": False,
        "reviewer": "a",
        "amount": 3,
        "level": "high",
    }
    numbers = {"type": "object", "properties": {"x": {"type": "number"}, "k": {"enum": [1, 2]}}}
    assert parse_form(numbers, {"x": "2.5", "k": "2"}) == {"x": 2.5, "k": 2}
    assert parse_form(numbers, {"x": ""}) == {}  # an optional field left empty: not sent
    with pytest.raises(FormProblem, match="not a valid number"):
        parse_form(numbers, {"x": "many"})
    nested = {"type": "object", "properties": {"tags": {"type": "array"}}}
    assert [f.widget for f in form_fields(nested)] == ["json"]
    assert parse_form(nested, {"tags": '["a", "b"]'}) == {"tags": ["a", "b"]}
    assert [(f.name, f.widget) for f in form_fields({"type": "string"})] == [("value", "text")]
    assert parse_form({"type": "string"}, {"value": "t-1"}) == "t-1"
    assert form_fields({}) == [] and parse_form({}, {}) is None
    optional = {
        "type": "object",
        "properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
    }
    assert [f.widget for f in form_fields(optional)] == ["integer"]


def test_the_timeline_and_its_rewind_button(client: TestClient, engine: sf.Engine) -> None:
    engine.start(Order, id="o-1")
    engine.send("o-1", "withdraw")
    html = client.get("/ui/instances/o-1").text
    assert 'id="history"' in html and 'data-kind="started"' in html
    assert 'data-kind="event_delivered"' in html
    seqs = engine.rewindable("o-1")
    delivered = next(e for e in engine.history("o-1") if e.kind == "event_delivered")
    target = max(s for s in seqs if s < delivered.seq)
    assert f'name="to" value="{target}"' in html
    answer = client.post("/ui/instances/o-1/rewind", data={"to": str(target)})
    assert f"rewound to #{target}" in client.get(answer.headers["location"]).text
    inst = engine.get("o-1")
    assert isinstance(inst.data, Order)
    assert inst.data.log == ["reserve"]
    refused = client.post("/ui/instances/o-1/rewind", data={"to": "999"})
    assert 'id="problem"' in client.get(refused.headers["location"]).text
    assert (
        client.post("/ui/instances/o-1/rewind", headers={"Origin": "https://x.example"}).status_code
        == 403
    )

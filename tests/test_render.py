"""Rendering: definition JSON, Mermaid and DOT diagrams (golden files), state overlay, images.

Snapshots live in ``tests/snapshots/definitions`` and ``tests/snapshots/diagrams``; rewrite them
with ``STMTFLOW_UPDATE_SNAPSHOTS=1`` and review the diff.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from golden import assert_json_snapshot, assert_snapshot

from stmtflow.analysis._validate import definition_problems
from stmtflow.core._drivers import resume
from stmtflow.dsl._handlers import BaseHandler, Timer
from stmtflow.dsl._statements import (
    Break,
    Case,
    Continue,
    Default,
    For,
    Go,
    If,
    On,
    OnEvent,
    RetryPolicy,
    Return,
    S,
    Section,
    Sleep,
    Step,
    Switch,
    Wait,
    WaitFor,
)
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.render._render import (
    GraphvizError,
    GraphvizNotFound,
    definition_json,
    render_image,
    to_dot,
    to_mermaid,
)
from stmtflow.state import (
    CallbackRequest,
    State,
    Thread,
    ThreadStatus,
    WaitEvent,
    WaitEventStatus,
    WorkflowStatus,
    new_state,
)

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz `dot` is not installed (Debian/Ubuntu: apt-get install graphviz)",
)


def act() -> None:
    """A step action that does nothing."""


def on_paid(amount: int) -> str:
    return f"paid {amount}"


class Webhook(BaseHandler):
    type = "Webhook"


def order() -> Section:
    """An order: reserve, remind in parallel, wait for payment or a timeout, then ship."""
    return S(
        Step("reserve", act, retry=RetryPolicy(max_attempts=5, non_retryable=(KeyError,))),
        Go(
            "reminders",
            S(
                For(
                    "remind_loop",
                    lambda: True,
                    Sleep("nap", timedelta(hours=6)),
                    Step("remind", act),
                )
            ),
            id="reminders-1",
        ),
        Wait(
            "payment",
            OnEvent("paid", on_paid, Step("receipt", act)),
            On("cancelled", Webhook()),
            On("timeout", Timer(hours=24), Step("release", act), Return()),
        ),
        If(lambda: True, Step("ship", act))
        .ElseIf(False, Step("backorder", act))
        .Else(Step("refund", act)),
    )


def polling() -> Section:
    """A loop with Break and Continue, a Switch, a WaitFor and a lazily named thread."""
    return S(
        For(
            "poll",
            True,
            Step("check", act),
            Switch(
                Case(lambda: True, Break()),
                Case(False, Continue()),
                Default(Sleep("backoff", timedelta(minutes=1, seconds=30))),
            ),
            If(False, Go("alarm", Step("page", act), id=lambda: "alarm-1")),
        ),
        WaitFor("settled", lambda: True, act),
        Wait("deadline", On("at_noon", Timer(at=datetime(2030, 1, 1, 12, tzinfo=UTC)))),
        Switch(Case(True, Step("done", act))),
    )


def awkward() -> Section:
    """Names full of characters the diagram formats give meaning to."""
    return S(
        Step('say "hi" [now]', act),
        Step("a -> b | c; {d} <e> & #f", act),
        Wait("back\\slash", On("line\nbreak", Timer(seconds=0.5))),
        Go("end", Step("subgraph", act)),
    )


DEFINITIONS: dict[str, Callable[[], Section]] = {
    "order": order,
    "polling": polling,
    "awkward": awkward,
}


def waiting_order_state() -> State:
    """Main thread waits for payment; the reminders thread sleeps in its loop."""
    return State(
        id="order-1",
        workflow="Order",
        status=WorkflowStatus.WAITING,
        pc=9,
        threads=[
            Thread(
                id="_main_",
                name="_main_",
                status=ThreadStatus.WAITING_EVENT,
                cur_step="payment",
                wait_events=[
                    _event("FunctionHandler", "paid"),
                    _event("Webhook", "cancelled"),
                    _event("Timer", "timeout"),
                ],
                pc=7,
            ),
            Thread(
                id="reminders-1",
                name="reminders",
                status=ThreadStatus.WAITING_EVENT,
                cur_step="nap",
                wait_events=[_event("Timer", "nap.timer")],
                pc=9,
            ),
        ],
    )


def _event(
    kind: str, name: str, status: WaitEventStatus = WaitEventStatus.SETUP, handled: bool = False
) -> WaitEvent:
    req = CallbackRequest(workflow_id="order-1", thread_id="t", name=name, pc=7)
    return WaitEvent(type=kind, req=req, status=status, handled=handled)


@pytest.mark.parametrize("name", DEFINITIONS)
def test_the_definitions_used_here_are_valid(name: str) -> None:
    assert definition_problems(DEFINITIONS[name]()) == []


@pytest.mark.parametrize("name", DEFINITIONS)
def test_definition_json_snapshot(name: str) -> None:
    data = definition_json(DEFINITIONS[name]())
    assert json.loads(json.dumps(data)) == data  # JSON-ready: plain types only
    assert_json_snapshot(data, f"definitions/{name}.json")


@pytest.mark.parametrize("name", DEFINITIONS)
def test_mermaid_snapshot(name: str) -> None:
    text = to_mermaid(DEFINITIONS[name]())
    check_mermaid(text)
    assert_snapshot(text, f"diagrams/{name}.mmd")


@pytest.mark.parametrize("name", DEFINITIONS)
def test_dot_snapshot(name: str) -> None:
    assert_snapshot(to_dot(DEFINITIONS[name]()), f"diagrams/{name}.dot")


def test_overlay_snapshots() -> None:
    state = waiting_order_state()
    mermaid = to_mermaid(order(), state)
    check_mermaid(mermaid)
    assert_snapshot(mermaid, "diagrams/order_waiting.mmd")
    assert_snapshot(to_dot(order(), state), "diagrams/order_waiting.dot")


def test_definition_json_shows_shapes_not_code() -> None:
    data = definition_json(order())
    step, go, wait, branch = data["body"]
    assert step == {
        "type": "Step",
        "name": "reserve",
        "retry": {
            "max_attempts": 5,
            "initial_interval": 1,
            "backoff_coefficient": 2.0,
            "max_interval": 300,
            "non_retryable": ["KeyError"],
        },
    }
    assert go["id"] == "reminders-1"
    assert go["body"][0]["body"][0] == {
        "type": "Sleep",
        "name": "nap",
        "seconds": 21600,
        "event": "nap.timer",
    }
    assert [(e["event"], e["handler"], e["timer"]) for e in wait["events"]] == [
        ("paid", "FunctionHandler", None),
        ("cancelled", "Webhook", None),
        ("timeout", "Timer", 86400),
    ]
    assert [b["cond"] for b in branch["branches"]] == ["lazy", False]
    assert branch["else"] == [{"type": "Step", "name": "refund", "retry": None}]


def test_a_thread_at_a_step_is_highlighted_with_its_id() -> None:
    state = State(
        id="wf",
        workflow="Order",
        status=WorkflowStatus.RESUMING,
        threads=[
            Thread(id="_main_", name="_main_", status=ThreadStatus.EXECUTING, cur_step="ship")
        ],
    )
    mermaid = to_mermaid(order(), state)
    assert 'n3_0_0["ship<br>▶ _main_"]' in mermaid
    assert "    class n3_0_0 current" in mermaid
    dot = to_dot(order(), state)
    assert '"n3_0_0" [label="ship\\n▶ _main_", shape=box, style=rounded, style="filled,bold"' in dot
    assert 'class="current"' in dot


def test_pending_events_are_marked_on_their_edges() -> None:
    mermaid = to_mermaid(order(), waiting_order_state())
    edges = [line.strip() for line in mermaid.splitlines() if "-->" in line or "-.->" in line]
    pending = [i for i, edge in enumerate(edges) if "(pending)" in edge]
    assert [edges[i] for i in pending] == [
        'n1_0_0_0_0 -->|"nap.timer · after 6h (pending)"| n1_0_0_0_1',
        'n2 -->|"paid · FunctionHandler (pending)"| n2_0_0_0',
        'n2 -->|"timeout · after 1d (pending)"| n2_2_0_0',
        'n2 -->|"cancelled · Webhook (pending)"| n3',
    ]
    assert f"    linkStyle {','.join(map(str, pending))} stroke:#b45309" in mermaid


def test_a_fired_event_is_no_longer_pending() -> None:
    state = waiting_order_state()
    main = state.threads[0]
    main.status, main.cur_callback = ThreadStatus.RESUMING, "paid"
    main.wait_events = [
        _event("FunctionHandler", "paid", handled=True),
        _event("Timer", "timeout", status=WaitEventStatus.PENDING_TEARDOWN),
    ]
    assert "paid · FunctionHandler (pending)" not in to_mermaid(order(), state)
    assert "timeout · after 1d (pending)" not in to_mermaid(order(), state)


def test_a_thread_not_started_stands_at_its_start() -> None:
    state = waiting_order_state()
    state.threads[1] = Thread(id="reminders-1", name="reminders", status=ThreadStatus.RESUMING)
    assert 'n1_start(["thread start<br>▶ reminders-1"])' in to_mermaid(order(), state)


def test_a_finished_workflow_is_dimmed_everywhere() -> None:
    state = waiting_order_state()
    state.status, state.threads = WorkflowStatus.FINISHED, []
    mermaid = to_mermaid(order(), state)
    node_ids = re.findall(r"^\s+(n\w*)[(\[{>]", mermaid, flags=re.MULTILINE)
    dimmed = re.findall(r"^    class (\S+) done$", mermaid, flags=re.MULTILINE)
    assert sorted(dimmed[0].split(",")) == sorted(node_ids)
    assert "current" not in mermaid
    assert all("done" in line for line in to_dot(order(), state).splitlines() if "->" in line)


def test_a_failed_workflow_marks_positions_as_failed() -> None:
    state = waiting_order_state()
    state.status = WorkflowStatus.FAILED
    assert "    class n1_0_0_0_0,n2 failed" in to_mermaid(order(), state)


def test_node_ids_are_stable_and_path_derived() -> None:
    assert to_mermaid(order()) == to_mermaid(order())
    ids = re.findall(r"^\s+(n\w*)[(\[{>]", to_mermaid(polling()), flags=re.MULTILINE)
    assert ids == [
        "n_start",
        "n0",
        "n0_0_0",
        "n0_0_1",
        "n0_0_1_2_0_0",
        "n0_0_2",
        "n0_0_2_0_0",
        "n1",
        "n2",
        "n3",
        "n3_0_0_0",
        "n_end",
        "n0_0_2_0_0_start",
        "n0_0_2_0_0_0_0",
        "n0_0_2_0_0_end",
    ]


def test_labels_are_escaped() -> None:
    mermaid = to_mermaid(awkward())
    assert 'n0["say #34;hi#34; [now]"]' in mermaid
    assert 'n1["a -#62; b | c; {d} #60;e#62; #38; #35;f"]' in mermaid
    assert '-->|"line<br>break · after 0.5s"|' in mermaid
    dot = to_dot(awkward())
    assert '"n0" [label="say \\"hi\\" [now]"' in dot
    assert '"n2" [label="Wait back\\\\slash"' in dot
    assert '[label="line\\nbreak · after 0.5s"]' in dot


@needs_dot
@pytest.mark.parametrize("name", DEFINITIONS)
def test_dot_output_parses_with_graphviz(name: str) -> None:
    for state in (None, waiting_order_state()):
        source = to_dot(DEFINITIONS[name](), state)
        done = subprocess.run(
            ["dot", "-Tcanon"], input=source.encode(), capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr.decode()
        assert done.stderr == b"", done.stderr.decode()


@needs_dot
def test_render_image_draws_svg_with_live_positions() -> None:
    svg = render_image(order(), waiting_order_state())
    assert svg.lstrip().startswith(b"<?xml")
    assert b"<svg" in svg
    assert b'class="node current"' in svg
    assert render_image(order(), format="png").startswith(b"\x89PNG")


@needs_dot
def test_render_image_reports_a_format_graphviz_refuses() -> None:
    with pytest.raises(GraphvizError, match="dot -Tnope failed"):
        render_image(order(), format="nope")


def test_render_image_refuses_a_format_that_is_not_a_word() -> None:
    with pytest.raises(GraphvizError, match="not a Graphviz output format"):
        render_image(order(), format="svg -o /tmp/x")


def test_render_image_without_graphviz_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no programs at all
    with pytest.raises(GraphvizNotFound, match="apt-get install graphviz"):
        render_image(order())


_MERMAID_SHAPES = {"([": "])", "[/": "/]", "{{": "}}", "[[": "]]", "[": "]", "{": "}", ">": "]"}
_QUOTED = r'"[^"]*"'
_NODE = re.compile(rf"^\s+(n\w*)(\(\[|\[/|\{{\{{|\[\[|\[|\{{|>)({_QUOTED})(\S*)$")
_EDGE = re.compile(rf"^\s+(n\w*) (-->|-\.->)(?:\|{_QUOTED}\|)? (n\w*)$")
_SUBGRAPH = re.compile(rf"^\s+subgraph (n\w*) \[{_QUOTED}\]$")
_CLASS = re.compile(r"^\s+class (n\w*(?:,n\w*)*) (\w+)$")
_CLASSDEF = re.compile(r"^\s+classDef (\w+) [\w:#,.\-]+$")
_LINKSTYLE = re.compile(r"^\s+linkStyle (\d+(?:,\d+)*) [\w:#,.\-]+$")


def check_mermaid(text: str) -> None:
    """Structural check of our Mermaid subset: every line parses, ids and links resolve."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes: list[str] = []
    edges: list[tuple[str, str]] = []
    depth = 0
    classes: set[str] = set()
    for line in lines[1:]:
        if node := _NODE.match(line):
            assert node[4] == _MERMAID_SHAPES[node[2]], line
            nodes.append(node[1])
        elif edge := _EDGE.match(line):
            edges.append((edge[1], edge[3]))
        elif _SUBGRAPH.match(line):
            depth += 1
        elif line.strip() == "end":
            depth -= 1
            assert depth >= 0, "unbalanced subgraph/end"
        elif classdef := _CLASSDEF.match(line):
            classes.add(classdef[1])
        elif cls := _CLASS.match(line):
            assert cls[2] in classes, f"class {cls[2]} used before classDef"
            assert set(cls[1].split(",")) <= set(nodes), line
        elif link := _LINKSTYLE.match(line):
            assert all(int(i) < len(edges) for i in link[1].split(",")), line
        else:
            pytest.fail(f"not valid Mermaid for this renderer: {line!r}")
    assert depth == 0, "unbalanced subgraph/end"
    assert len(nodes) == len(set(nodes)), "duplicate node ids"
    assert {end for edge in edges for end in edge} <= set(nodes), "edge to an undeclared node"


class OrderFlow(WorkflowState):
    """The ``order`` definition as a workflow class, to draw a state the interpreter wrote."""

    def definition(self) -> Section:
        return order()


def test_overlay_of_a_state_the_interpreter_wrote() -> None:
    state = new_state("order-1", OrderFlow)
    resume(OrderFlow(), state, now=datetime(2030, 1, 1, tzinfo=UTC))
    mermaid = to_mermaid(order(), state)
    assert 'n2[/"Wait payment<br>▶ _main_"/]' in mermaid
    assert 'n1_0_0_0_0[/"Sleep nap<br>▶ reminders-1"/]' in mermaid
    assert '"paid · FunctionHandler (pending)"' in mermaid
    assert '"nap.timer · after 6h (pending)"' in mermaid

"""The flowchart a definition is drawn as, shared by the Mermaid and DOT writers.

`flowchart` turns a statement tree into nodes, edges and lanes (one per ``Go``), then marks
live positions when a `State` is given. The writers in ``render_mermaid`` and ``render_dot``
only print it. Node ids come from statement paths (``n2_0_1``: the tree's third statement, its
first child, that one's second child — indices as `stmtflow.analysis._walk.children` gives them), so
they are stable across runs and safe in both formats.

Example:
    >>> import stmtflow as sf
    >>> chart = flowchart(sf.S(sf.Step("a", print), sf.Return()))
    >>> [(n.id, n.label) for n in chart.nodes]
    [('n_start', 'start'), ('n0', 'a'), ('n1', 'Return'), ('n_end', 'end')]
    >>> [(e.src, e.dst) for e in chart.edges]
    [('n_start', 'n0'), ('n0', 'n1')]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, NamedTuple

from stmtflow.dsl._handlers import Timer, handler_type
from stmtflow.dsl._statements import (
    Break,
    Case,
    Continue,
    Default,
    For,
    Go,
    If,
    On,
    Return,
    Section,
    Sleep,
    Statement,
    Step,
    Switch,
    Wait,
    WaitFor,
)
from stmtflow.state import MAIN_THREAD, State, WaitEventStatus, WorkflowStatus

__all__ = [
    "Edge",
    "Flowchart",
    "Lane",
    "Node",
    "cond_value",
    "duration_text",
    "flowchart",
    "handler_text",
]

Shape = Literal["start", "end", "step", "decision", "wait", "waitfor", "go", "invalid"]
EdgeKind = Literal["flow", "back", "spawn"]
Mark = Literal["current", "failed", "pending", "done"]

START, END = "n_start", "n_end"


@dataclass(slots=True)
class Node:
    """A box of the chart. ``name`` is the statement name the overlay matches positions by."""

    id: str
    label: str
    shape: Shape
    lane: str | None = None
    name: str | None = None
    marks: list[Mark] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The label as drawn: with a line naming the threads standing here, if any."""
        return f"{self.label}\n▶ {', '.join(self.threads)}" if self.threads else self.label


@dataclass(slots=True)
class Edge:
    """An arrow. ``event`` is set on the arrow leaving a ``Wait``/``Sleep`` for that event."""

    src: str
    dst: str
    label: str = ""
    kind: EdgeKind = "flow"
    event: str | None = None
    marks: list[Mark] = field(default_factory=list)

    def text(self) -> str:
        """The label as drawn: ``(pending)`` added to an event some thread waits for."""
        return f"{self.label} (pending)" if "pending" in self.marks else self.label


@dataclass(slots=True)
class Lane:
    """The body of a ``Go``: a thread drawn beside the main one."""

    id: str
    label: str
    start: str
    go_name: str


@dataclass(slots=True)
class Flowchart:
    """Nodes (in drawing order), edges and lanes of one definition."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    lanes: list[Lane] = field(default_factory=list)


def flowchart(section: Statement, state: State | None = None) -> Flowchart:
    """Build the chart of ``section``, with ``state``'s positions marked when given."""
    builder = _Builder()
    start = builder.node(START, "start", "start", None)
    exits = builder.stmt(section, (), [_Exit(start)], _Ctx(None, None))
    builder.connect(exits, builder.node(END, "end", "end", None))
    if state is not None:
        _overlay(builder.chart, state)
    return builder.chart


def cond_value(cond: object) -> bool | str:
    """A condition as shown: ``"lazy"`` for a callable, else its truth value."""
    return "lazy" if callable(cond) else bool(cond)


def duration_text(delay: object) -> str:
    """A short duration: ``1d 2h``, ``1m 30s``, ``0.5s`` (the repr if not a timedelta)."""
    if not isinstance(delay, timedelta):
        return repr(delay)
    rest = delay.total_seconds()
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return " ".join(parts)


def handler_text(handler: object) -> str:
    """What an event waits on: ``after 24h`` / ``at <time>`` for a Timer, else the handler type."""
    if isinstance(handler, Timer):
        return (
            f"at {handler.at.isoformat()}"
            if handler.at
            else f"after {duration_text(handler.delay)}"
        )
    return handler_type(handler)


class _Exit(NamedTuple):
    """A loose end: an arrow from ``src`` still looking for the next node."""

    src: str
    label: str = ""
    event: str | None = None


@dataclass(slots=True)
class _Loop:
    head: str
    breaks: list[_Exit] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Ctx:
    lane: str | None
    loop: _Loop | None


def _with(exits: list[_Exit], word: str) -> list[_Exit]:
    return [_Exit(e.src, f"{e.label}, {word}" if e.label else word, e.event) for e in exits]


class _Builder:
    def __init__(self) -> None:
        self.chart = Flowchart()

    def node(
        self, id: str, label: str, shape: Shape, lane: str | None, name: str | None = None
    ) -> str:
        self.chart.nodes.append(Node(id, label, shape, lane, name))
        return id

    def connect(self, exits: list[_Exit], dst: str, kind: EdgeKind = "flow") -> None:
        self.chart.edges.extend(Edge(e.src, dst, e.label, kind, e.event) for e in exits)

    def section(
        self, body: Section, path: tuple[int, ...], exits: list[_Exit], ctx: _Ctx
    ) -> list[_Exit]:
        for index, stmt in enumerate(body.body):
            exits = self.stmt(stmt, (*path, index), exits, ctx)
        return exits

    def stmt(
        self, stmt: object, path: tuple[int, ...], exits: list[_Exit], ctx: _Ctx
    ) -> list[_Exit]:
        """Draw one statement entered by ``exits``; return its own loose ends."""
        nid = "n" + "_".join(map(str, path))

        def box(label: str, shape: Shape, name: str | None = None) -> str:
            self.connect(exits, self.node(nid, label, shape, ctx.lane, name))
            return nid

        match stmt:
            case Section():
                return self.section(stmt, path, exits, ctx)
            case Step():
                policy = stmt.retry
                retry = f"\nup to {policy.max_attempts} attempts" if policy is not None else ""
                return [_Exit(box(f"{stmt.name}{retry}", "step", stmt.name))]
            case If():
                head = box("If", "decision")
                out = []
                for index, branch in enumerate(stmt.branches):
                    word = "if" if index == 0 else "elif"
                    entry = [_Exit(head, f"{word} ({cond_value(branch.cond)})")]
                    out += self.section(branch.body, (*path, index), entry, ctx)
                if stmt.else_body is None:
                    return [*out, _Exit(head, "else")]
                entry = [_Exit(head, "else")]
                return out + self.section(stmt.else_body, (*path, len(stmt.branches)), entry, ctx)
            case Switch():
                return self.switch(stmt, box("Switch", "decision"), path, ctx)
            case For():
                loop = _Loop(box(f"For {stmt.name}", "decision", stmt.name))
                entry = [_Exit(loop.head, f"while ({cond_value(stmt.cond)})")]
                body = self.section(stmt.body, (*path, 0), entry, _Ctx(ctx.lane, loop))
                self.connect(body, loop.head, "back")
                return [_Exit(loop.head, "done"), *loop.breaks]
            case Break() if ctx.loop is not None:
                ctx.loop.breaks.extend(_with(exits, "break"))
                return []
            case Continue() if ctx.loop is not None:
                self.connect(_with(exits, "continue"), ctx.loop.head, "back")
                return []
            case Return():
                box("Return", "end")
                return []
            case Go():
                self.go(stmt, box(f"Go {stmt.name}", "go", stmt.name), path)
                return [_Exit(nid)]
            case Wait():
                head = box(f"Wait {stmt.name}", "wait", stmt.name)
                out = []
                for index, on in enumerate(stmt.events):
                    if not isinstance(on, On):
                        out += self.stmt(on, (*path, index), [_Exit(head)], ctx)
                        continue
                    entry = [_Exit(head, f"{on.event} · {handler_text(on.handler)}", on.event)]
                    out += self.section(on.body, (*path, index, 0), entry, ctx)
                return out or [_Exit(head)]
            case Sleep():
                head = box(f"Sleep {stmt.name}", "wait", stmt.name)
                return [
                    _Exit(head, f"{stmt.event} · after {duration_text(stmt.duration)}", stmt.event)
                ]
            case WaitFor():
                return [
                    _Exit(
                        box(
                            f"WaitFor {stmt.name}\nuntil ({cond_value(stmt.cond)})",
                            "waitfor",
                            stmt.name,
                        )
                    )
                ]
            case _:  # misplaced Case/Default/On, Break/Continue outside a For, or not a statement
                box(f"invalid: {type(stmt).__name__}", "invalid")
                return [_Exit(nid)]

    def switch(self, stmt: Switch, head: str, path: tuple[int, ...], ctx: _Ctx) -> list[_Exit]:
        out: list[_Exit] = []
        for index, case in enumerate(stmt.cases):
            if isinstance(case, Case):
                entry = [_Exit(head, f"case {index + 1} ({cond_value(case.cond)})")]
            elif isinstance(case, Default):
                entry = [_Exit(head, "default")]
            else:
                out += self.stmt(case, (*path, index), [_Exit(head)], ctx)
                continue
            out += self.section(case.body, (*path, index, 0), entry, ctx)
        if not any(isinstance(case, Default) for case in stmt.cases):
            out.append(_Exit(head, "no case"))
        return out

    def go(self, stmt: Go, head: str, path: tuple[int, ...]) -> None:
        ident = "" if stmt.id is None else f" (id: {'lazy' if callable(stmt.id) else stmt.id})"
        lane = Lane(f"{head}_lane", f"thread {stmt.name}{ident}", f"{head}_start", stmt.name)
        self.chart.lanes.append(lane)
        start = self.node(lane.start, "thread start", "start", lane.id)
        self.connect([_Exit(head, "spawn")], start, "spawn")
        exits = self.section(stmt.body, (*path, 0), [_Exit(start)], _Ctx(lane.id, None))
        self.connect(exits, self.node(f"{head}_end", "thread end", "end", lane.id))


def _overlay(chart: Flowchart, state: State) -> None:
    """Mark positions and pending events; see ``docs/diagrams.md`` for the rules."""
    if state.status in (WorkflowStatus.FINISHED, WorkflowStatus.CANCELLED):
        for node in chart.nodes:
            node.marks.append("done")
        for edge in chart.edges:
            edge.marks.append("done")
        return
    mark: Mark = "failed" if state.status is WorkflowStatus.FAILED else "current"
    by_name = {node.name: node for node in chart.nodes if node.name is not None}
    by_id = {node.id: node for node in chart.nodes}
    lane_starts = {lane.go_name: lane.start for lane in chart.lanes}
    pending: set[str] = set()
    for thread in state.threads:
        if thread.cur_step:
            here = by_name.get(thread.cur_step)
        else:  # not started: at the start of its body
            start = START if thread.id == MAIN_THREAD else lane_starts.get(thread.name, "")
            here = by_id.get(start)
        if here is not None:
            if mark not in here.marks:
                here.marks.append(mark)
            here.threads.append(thread.id)
        pending.update(
            event.req.name
            for event in thread.wait_events
            if not event.handled and event.status is not WaitEventStatus.PENDING_TEARDOWN
        )
    for edge in chart.edges:
        if edge.event in pending:
            edge.marks.append("pending")

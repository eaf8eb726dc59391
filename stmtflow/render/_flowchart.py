"""The flowchart a definition is drawn as, shared by the Mermaid and DOT writers.

`flowchart` turns a statement tree into nodes, edges and lanes (one per ``Go``), then marks
live positions when a `State` is given. How each statement is drawn is its kind's rule
(`stmtflow.dsl._kind.Kind.draw`, beside the statement class), written against `_Drawing`. The
writers in ``_mermaid`` and ``_dot`` only print it. Node ids come from statement paths
(``n2_0_1``: the tree's third statement, its first child, that one's second child — indices as
`stmtflow.analysis._walk.children` gives them), so they are stable across runs and safe in both
formats.

Example:
    >>> import stmtflow as sf
    >>> chart = flowchart(sf.S(sf.Step("a", print), sf.Return()))
    >>> [(n.id, n.label) for n in chart.nodes]
    [('n_start', 'start'), ('n0', 'a'), ('n1', 'Return'), ('n_end', 'end')]
    >>> [(e.src, e.dst) for e in chart.edges]
    [('n_start', 'n0'), ('n0', 'n1')]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from stmtflow.dsl._kind import Exit, Loop, Shape, kind_of, rules
from stmtflow.dsl._statements import Statement
from stmtflow.state import MAIN_THREAD, State, WaitEventStatus, WorkflowStatus

__all__ = ["Children", "Edge", "Flowchart", "Lane", "Mark", "Node", "Shape", "flowchart"]

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
    body: str | None = None
    """The box of a body built from the thread's arg (its statements are not in the chart)."""


@dataclass(slots=True)
class Flowchart:
    """Nodes (in drawing order), edges and lanes of one definition."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    lanes: list[Lane] = field(default_factory=list)


Children = Mapping[str, str]
"""A line about each `Call`'s child, by the call's name (e.g. ``"o-1/pay.child@1: finished"``)."""


def flowchart(
    section: Statement, state: State | None = None, *, children: Children | None = None
) -> Flowchart:
    """Build the chart of ``section``, with ``state``'s positions marked when given, and a line
    about their children under the boxes of the calls ``children`` names."""
    builder = _Builder()
    start = builder.node(START, "start", "start", None)
    exits = builder.stmt(section, (), [Exit(start)], None, None)
    builder.connect(exits, builder.node(END, "end", "end", None))
    if state is not None:
        _overlay(builder.chart, state)
    for node in builder.chart.nodes:
        if children and node.shape == "call" and node.name is not None and node.name in children:
            node.label += f"\nchild {children[node.name]}"
    return builder.chart


class _Builder:
    def __init__(self) -> None:
        self.chart = Flowchart()

    def node(
        self, id: str, label: str, shape: Shape, lane: str | None, name: str | None = None
    ) -> str:
        self.chart.nodes.append(Node(id, label, shape, lane, name))
        return id

    def connect(self, exits: list[Exit], dst: str, kind: EdgeKind = "flow") -> None:
        self.chart.edges.extend(Edge(e.src, dst, e.label, kind, e.event) for e in exits)

    def stmt(
        self,
        stmt: object,
        path: tuple[int, ...],
        entry: list[Exit],
        lane: str | None,
        loop: Loop | None,
    ) -> list[Exit]:
        """Draw one statement entered by ``entry`` (its kind's `draw`); return its loose ends."""
        drawing = _Drawing(self, stmt, path, lane, loop)
        kind = kind_of(stmt)
        if kind is None:  # not a statement at all
            return drawing.invalid(entry)
        return kind.draw(stmt, drawing, entry)


class _Drawing:
    """The chart as one statement's rules see it (`stmtflow.dsl._kind.Drawing`)."""

    __slots__ = ("builder", "lane_id", "loop", "path", "stmt")

    def __init__(
        self,
        builder: _Builder,
        stmt: object,
        path: tuple[int, ...],
        lane: str | None,
        loop: Loop | None,
    ) -> None:
        self.builder = builder
        self.stmt = stmt
        self.path = path
        self.lane_id = lane
        self.loop = loop

    @property
    def id(self) -> str:
        """The node id of this statement: ``n`` and its path (``n2_0_1``)."""
        return "n" + "_".join(map(str, self.path))

    def box(self, entry: list[Exit], label: str, shape: Shape, name: str | None = None) -> str:
        self.builder.connect(entry, self.builder.node(self.id, label, shape, self.lane_id, name))
        return self.id

    def child(
        self, path: tuple[int, ...], entry: list[Exit], *, loop: Loop | None = None
    ) -> list[Exit]:
        node: Any = self.stmt
        for index in path:
            node = rules(node).children(node)[index]
        return self.builder.stmt(node, (*self.path, *path), entry, self.lane_id, loop or self.loop)

    def back(self, exits: list[Exit], head: str) -> None:
        self.builder.connect(exits, head, "back")

    def lane(self, head: str, label: str, path: tuple[int, ...], go_name: str) -> None:
        builder = self.builder
        lane = Lane(f"{head}_lane", label, f"{head}_start", go_name)
        builder.chart.lanes.append(lane)
        start = builder.node(lane.start, "thread start", "start", lane.id)
        builder.connect([Exit(head, "spawn")], start, "spawn")
        inner = _Drawing(builder, self.stmt, self.path, lane.id, None)
        exits = inner.child(path, [Exit(start)])
        builder.connect(exits, builder.node(f"{head}_end", "thread end", "end", lane.id))

    def built_lane(self, head: str, label: str, body: str, go_name: str) -> None:
        builder = self.builder
        lane = Lane(f"{head}_lane", label, f"{head}_start", go_name, f"{head}_body")
        builder.chart.lanes.append(lane)
        start = builder.node(lane.start, "thread start", "start", lane.id)
        builder.connect([Exit(head, "spawn")], start, "spawn")
        inner = builder.node(lane.body or "", body, "step", lane.id)
        builder.connect([Exit(start)], inner)
        builder.connect([Exit(inner)], builder.node(f"{head}_end", "thread end", "end", lane.id))

    def invalid(self, entry: list[Exit]) -> list[Exit]:
        """A misplaced Case/Default/On, Break/Continue outside a For, or not a statement."""
        return [Exit(self.box(entry, f"invalid: {type(self.stmt).__name__}", "invalid"))]


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
    built = {lane.go_name: lane.body for lane in chart.lanes if lane.body is not None}
    pending: set[str] = set()
    for thread in state.threads:
        who = thread.id
        if thread.name in built:  # in a body built from its arg: not in the chart
            here = by_id.get(built[thread.name] or "")
            who = f"{thread.id} at {thread.cur_step}" if thread.cur_step else thread.id
        elif thread.cur_step:
            here = by_name.get(thread.cur_step)
        else:  # not started: at the start of its body
            start = START if thread.id == MAIN_THREAD else lane_starts.get(thread.name, "")
            here = by_id.get(start)
        if here is not None:
            if mark not in here.marks:
                here.marks.append(mark)
            here.threads.append(who)
        pending.update(
            event.req.name
            for event in thread.wait_events
            if not event.handled and event.status is not WaitEventStatus.PENDING_TEARDOWN
        )
    for edge in chart.edges:
        if edge.event in pending:
            edge.marks.append("pending")

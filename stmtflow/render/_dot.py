"""Graphviz DOT text for a `Flowchart` (see ``stmtflow.render.to_dot``).

Every id and label is a quoted DOT string with ``\\`` and ``"`` escaped, so a statement name can
hold anything. Lanes (``Go`` bodies) are ``cluster_`` subgraphs. Marked nodes and edges carry a
``class`` attribute too (``current``, ``failed``, ``pending``, ``done``), for styling SVG output.

Example:
    >>> import stmtflow as sf
    >>> from stmtflow.render._flowchart import flowchart
    >>> print(dot(flowchart(sf.S(sf.Step('say "hi"', print)))), end="")
    digraph workflow {
        graph [fontname="Helvetica", fontsize=11, ordering=out];
        node [fontname="Helvetica", fontsize=11];
        edge [fontname="Helvetica", fontsize=10];
        "n_start" [label="start", shape=oval];
        "n0" [label="say \\"hi\\"", shape=box, style=rounded];
        "n_end" [label="end", shape=oval, peripheries=2];
        "n_start" -> "n0";
        "n0" -> "n_end";
    }
"""

from __future__ import annotations

from stmtflow.render._flowchart import Edge, Flowchart, Mark, Node, Shape

__all__ = ["dot", "dot_text"]

_SHAPES: dict[Shape, str] = {
    "start": "shape=oval",
    "end": "shape=oval, peripheries=2",
    "step": "shape=box, style=rounded",
    "decision": "shape=diamond",
    "wait": "shape=parallelogram",
    "waitfor": "shape=hexagon",
    "go": "shape=box3d",
    "join": "shape=invtrapezium",
    "call": "shape=box, peripheries=2",
    "invalid": 'shape=octagon, color="#b91c1c"',
}
_NODE_MARKS: dict[Mark, str] = {
    "current": 'style="filled,bold", fillcolor="#fde68a", color="#b45309", penwidth=3',
    "failed": 'style="filled,bold", fillcolor="#fecaca", color="#b91c1c", penwidth=3',
    "done": 'color="#d1d5db", fontcolor="#9ca3af"',
}
_EDGE_MARKS: dict[Mark, str] = {
    "pending": 'color="#b45309", fontcolor="#b45309", penwidth=3',
    "done": 'color="#d1d5db", fontcolor="#9ca3af"',
}
_KINDS = {"flow": "", "back": "", "spawn": "style=dashed"}
_INDENT = "    "


def dot_text(text: str) -> str:
    """``text`` as a quoted DOT string (line breaks become ``\\n``).

    Example:
        >>> print(dot_text('a "b"\\\\c'))
        "a \\"b\\"\\\\c"
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def dot(chart: Flowchart) -> str:
    """The chart as a DOT ``digraph``, ending in a newline."""
    lines = [
        "digraph workflow {",
        f'{_INDENT}graph [fontname="Helvetica", fontsize=11, ordering=out];',
        f'{_INDENT}node [fontname="Helvetica", fontsize=11];',
        f'{_INDENT}edge [fontname="Helvetica", fontsize=10];',
    ]
    lines += [_node(node, 1) for node in chart.nodes if node.lane is None]
    for lane in chart.lanes:
        lines.append(f"{_INDENT}subgraph {dot_text('cluster_' + lane.id)} {{")
        lines.append(f"{_INDENT * 2}label={dot_text(lane.label)}; style=dashed;")
        lines += [_node(node, 2) for node in chart.nodes if node.lane == lane.id]
        lines.append(f"{_INDENT}}}")
    lines += [_edge(edge) for edge in chart.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node(node: Node, depth: int) -> str:
    attrs = [f"label={dot_text(node.text())}", _SHAPES[node.shape]]
    attrs += _marks(node.marks, _NODE_MARKS)
    return f"{_INDENT * depth}{dot_text(node.id)} [{', '.join(attrs)}];"


def _edge(edge: Edge) -> str:
    attrs = [f"label={dot_text(edge.text())}"] if edge.label else []
    attrs += [_KINDS[edge.kind]] if _KINDS[edge.kind] else []
    attrs += _marks(edge.marks, _EDGE_MARKS)
    tail = f" [{', '.join(attrs)}]" if attrs else ""
    return f"{_INDENT}{dot_text(edge.src)} -> {dot_text(edge.dst)}{tail};"


def _marks(marks: list[Mark], styles: dict[Mark, str]) -> list[str]:
    known = [mark for mark in marks if mark in styles]
    if not known:
        return []
    return [styles[known[0]], f"class={dot_text(' '.join(known))}"]

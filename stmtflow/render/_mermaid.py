"""Mermaid flowchart text for a `Flowchart` (see ``stmtflow.render.to_mermaid``).

Every label is quoted, and the characters Mermaid would read as syntax or markup (``"``, ``#``,
``<``, ``>``, ``&``) are written as Mermaid entity codes (``#34;``...), so a statement name can
hold anything. Node ids are ``n`` plus digits and underscores: never a Mermaid keyword.

Example:
    >>> import stmtflow as sf
    >>> from stmtflow.render._flowchart import flowchart
    >>> print(mermaid(flowchart(sf.S(sf.Step('say "hi"', print)))), end="")
    flowchart TD
        n_start(["start"])
        n0["say #34;hi#34;"]
        n_end(["end"])
        n_start --> n0
        n0 --> n_end
"""

from __future__ import annotations

from stmtflow.render._flowchart import Edge, Flowchart, Node, Shape

__all__ = ["mermaid", "mermaid_text"]

_SHAPES: dict[Shape, tuple[str, str]] = {
    "start": ("([", "])"),
    "end": ("([", "])"),
    "step": ("[", "]"),
    "decision": ("{", "}"),
    "wait": ("[/", "/]"),
    "waitfor": ("{{", "}}"),
    "go": ("[[", "]]"),
    "join": ("[\\", "/]"),
    "call": ("[[", "]]"),
    "invalid": (">", "]"),
}
_ARROWS = {"flow": "-->", "back": "-->", "spawn": "-.->"}
_STYLES = {
    "current": "fill:#fde68a,stroke:#b45309,stroke-width:3px",
    "failed": "fill:#fecaca,stroke:#b91c1c,stroke-width:3px",
    "done": "fill:#f3f4f6,stroke:#d1d5db,color:#9ca3af",
}
_EDGE_STYLES = {
    "pending": "stroke:#b45309,stroke-width:3px,color:#b45309",
    "done": "stroke:#d1d5db,color:#9ca3af",
}
_ESCAPES = str.maketrans({c: f"#{ord(c)};" for c in '"#<>&'} | {"\n": "<br>"})
_INDENT = "    "


def mermaid_text(text: str) -> str:
    """``text`` as a quoted Mermaid label (line breaks become ``<br>``).

    Example:
        >>> mermaid_text('a "b" <c>')
        '"a #34;b#34; #60;c#62;"'
    """
    return '"' + text.translate(_ESCAPES) + '"'


def mermaid(chart: Flowchart) -> str:
    """The chart as a Mermaid ``flowchart TD``, ending in a newline."""
    lines = ["flowchart TD"]
    lines += [_node(node, 1) for node in chart.nodes if node.lane is None]
    for lane in chart.lanes:
        lines.append(f"{_INDENT}subgraph {lane.id} [{mermaid_text(lane.label)}]")
        lines += [_node(node, 2) for node in chart.nodes if node.lane == lane.id]
        lines.append(f"{_INDENT}end")
    lines += [_edge(edge) for edge in chart.edges]
    lines += _styles(chart)
    return "\n".join(lines) + "\n"


def _node(node: Node, depth: int) -> str:
    opening, closing = _SHAPES[node.shape]
    return f"{_INDENT * depth}{node.id}{opening}{mermaid_text(node.text())}{closing}"


def _edge(edge: Edge) -> str:
    label = f"|{mermaid_text(edge.text())}|" if edge.label else ""
    return f"{_INDENT}{edge.src} {_ARROWS[edge.kind]}{label} {edge.dst}"


def _styles(chart: Flowchart) -> list[str]:
    lines = []
    for mark, style in _STYLES.items():
        ids = [node.id for node in chart.nodes if mark in node.marks]
        if ids:
            lines.append(f"{_INDENT}classDef {mark} {style}")
            lines.append(f"{_INDENT}class {','.join(ids)} {mark}")
    for mark, style in _EDGE_STYLES.items():
        numbers = [str(i) for i, edge in enumerate(chart.edges) if mark in edge.marks]
        if numbers:
            lines.append(f"{_INDENT}linkStyle {','.join(numbers)} {style}")
    return lines

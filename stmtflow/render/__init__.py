"""Seeing a definition: `definition_json`, Mermaid and DOT diagrams, and images through Graphviz.

Every public name is re-exported from `stmtflow`.
"""

from stmtflow.render._render import (
    GraphvizError,
    GraphvizNotFound,
    definition_json,
    render_image,
    to_dot,
    to_mermaid,
)

__all__ = [
    "GraphvizError",
    "GraphvizNotFound",
    "definition_json",
    "render_image",
    "to_dot",
    "to_mermaid",
]

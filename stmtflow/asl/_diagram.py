"""A Mermaid flowchart of a state machine: its states, transitions, choices and catchers.

The workflow class `load` builds has the same statement tree for every machine (an advance
step and a wait, in a loop), which ``stmtflow graph`` draws; this draws the machine itself,
as the Step Functions console would: one box per state (its name and type), an arrow per
``Next``, ``Default``, choice rule (labelled with its comparison) and catcher (labelled with
its error names), and a box around each Parallel branch and Map processor.

Example:
    >>> print(to_mermaid({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"},
    ...                                              "B": {"Type": "Succeed"}}}))
    flowchart TD
      start((start)) --> s0
      s0["A<br/>Pass"]
      s0 --> s1
      s1(["B<br/>Succeed"])
"""

from __future__ import annotations

import itertools
from typing import Any

__all__ = ["to_mermaid"]

_ROUND = ("Succeed", "Fail")


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def _rule(rule: dict[str, Any]) -> str:
    for key in ("And", "Or"):
        if key in rule:
            return f" {key.lower()} ".join(f"({_rule(r)})" for r in rule[key])
    if "Not" in rule:
        return f"not ({_rule(rule['Not'])})"
    ops = [k for k in rule if k not in ("Variable", "Next", "Comment")]
    op = ops[0] if ops else "?"
    return f"{rule.get('Variable', '?')} {op} {rule.get(op)}"


def to_mermaid(definition: dict[str, Any]) -> str:
    """The Mermaid text of ``definition`` (a valid state machine)."""
    lines = ["flowchart TD"]
    ids = (f"s{n}" for n in itertools.count())

    def machine(spec: dict[str, Any], indent: str) -> str:
        names = {name: next(ids) for name in spec["States"]}
        for name, state in spec["States"].items():
            node, kind = names[name], state["Type"]
            text = _label(f"{name}<br/>{kind}")
            if kind in ("Parallel", "Map"):
                lines.append(f'{indent}subgraph {node}["{text}"]')
                inner = (
                    state["Branches"]
                    if kind == "Parallel"
                    else [state.get("ItemProcessor") or state["Iterator"]]
                )
                for branch in inner:
                    first = machine(branch, indent + "  ")
                    lines.append(f"{indent}  {node}_in(( )) --> {first}")
                lines.append(f"{indent}end")
            elif kind == "Choice":
                lines.append(f'{indent}{node}{{"{text}"}}')
            elif kind in _ROUND:
                lines.append(f'{indent}{node}(["{text}"])')
            else:
                lines.append(f'{indent}{node}["{text}"]')
            if "Next" in state:
                lines.append(f"{indent}{node} --> {names[state['Next']]}")
            for rule in state.get("Choices", []):
                lines.append(f'{indent}{node} -->|"{_label(_rule(rule))}"| {names[rule["Next"]]}')
            if "Default" in state:
                lines.append(f"{indent}{node} -->|default| {names[state['Default']]}")
            for catcher in state.get("Catch", []):
                errors = _label(", ".join(catcher["ErrorEquals"]))
                lines.append(f'{indent}{node} -.->|"catch {errors}"| {names[catcher["Next"]]}')
        return names[spec["StartAt"]]

    start = machine(definition, "  ")
    lines.insert(1, f"  start((start)) --> {start}")
    return "\n".join(lines)

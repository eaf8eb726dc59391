"""The diagrams of every example workflow, pinned as Mermaid and DOT golden files.

A change to rendering or to an example shows up here as a reviewable text diff; accept it with
``STMTFLOW_UPDATE_SNAPSHOTS=1`` after checking the picture still says the right thing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from golden import assert_snapshot

import stmtflow as sf
from stmtflow.runtime._loader import load_target

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Each example with the data its required fields need (the drawing does not depend on it).
TARGETS = {
    "quickstart:Expense": {"employee": "ada", "amount": 1.0, "description": "taxi"},
    "order:Order": {"item": "book", "price": 12},
    "approval:Approval": {"title": "budget"},
    "payment:Checkout": {"amount": 1},
    "booking_saga:Trip": {"traveller": "ada"},
    "dag_pipeline:SalesReport": {},
    "asl_order:OrderMachine": {},
}


@pytest.mark.parametrize("target", TARGETS)
def test_example_diagrams_are_pinned(target: str) -> None:
    module, name = target.split(":")
    cls = load_target(f"{EXAMPLES / module}.py:{name}")
    section = cls.model_validate(TARGETS[target]).definition()
    stem = target.split(":")[0]
    assert_snapshot(sf.to_mermaid(section), f"examples/{stem}.mmd")
    assert_snapshot(sf.to_dot(section), f"examples/{stem}.dot")


def test_the_asl_example_s_state_machine_diagram_is_pinned() -> None:
    """`stmtflow asl graph`'s drawing of the example's state machine itself."""
    from stmtflow.asl._diagram import to_mermaid

    module = load_target(f"{EXAMPLES / 'asl_order'}.py:OrderMachine")
    assert_snapshot(to_mermaid(module.asl_definition) + "\n", "examples/asl_order.states.mmd")

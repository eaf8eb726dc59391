"""Read-only queries over a statement tree: `children`, `walk` and the ``find_*`` look-ups.

The interpreter does not use `walk` to execute; validation, rendering and compatibility checks do.

Example:
    >>> import stmtflow as sf
    >>> tree = sf.S(sf.Step("a", print), sf.For("loop", True, sf.Step("b", print)))
    >>> [type(s).__name__ for s in walk(tree)]
    ['Section', 'Step', 'For', 'Section', 'Step']
    >>> find_step("b", tree).name
    'b'
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stmtflow.state import CallbackRequest
from stmtflow.statements import (
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

__all__ = ["children", "find_handler", "find_step", "find_waiting_step", "statement_name", "walk"]


def children(stmt: Statement) -> tuple[Statement, ...]:
    """The statements directly inside ``stmt``, in order.

    Sections hold statements; every other container holds sections (an ``If`` one per branch,
    ``Else`` last), cases (``Switch``) or events (``Wait``).
    """
    match stmt:
        case Section():
            return stmt.body
        case If():
            bodies = tuple(branch.body for branch in stmt.branches)
            return bodies if stmt.else_body is None else (*bodies, stmt.else_body)
        case Switch():
            return stmt.cases
        case Wait():
            return stmt.events
        case Case() | Default() | For() | Go() | On():
            return (stmt.body,)
        case Step() | WaitFor() | Sleep() | Break() | Continue() | Return():
            return ()
        case _:
            return ()


def statement_name(stmt: Any) -> str | None:
    """The name a statement can be found by: a position's name, or an ``On``'s event name."""
    match stmt:
        case Step() | Wait() | WaitFor() | Sleep() | For() | Go():
            return stmt.name
        case On():
            return stmt.event
        case _:
            return None


def walk(stmt: Statement) -> Iterator[Statement]:
    """Every statement of the tree under ``stmt`` (``stmt`` first), depth first, in order."""
    stack: list[Statement] = [stmt]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def find_step(name: str, section: Statement) -> Step | None:
    """The ``Step`` named ``name``, or None."""
    for node in walk(section):
        if isinstance(node, Step) and node.name == name:
            return node
    return None


def find_waiting_step(name: str, section: Statement) -> WaitFor | None:
    """The ``WaitFor`` named ``name``, or None."""
    for node in walk(section):
        if isinstance(node, WaitFor) and node.name == name:
            return node
    return None


def find_handler(req: CallbackRequest | str, section: Statement) -> Any | None:
    """The handler of the event ``req.name`` (an ``On``, or a ``Sleep``'s timer), or None."""
    event = req if isinstance(req, str) else req.name
    for node in walk(section):
        if isinstance(node, On) and node.event == event:
            return node.handler
        if isinstance(node, Sleep) and node.event == event:
            return node.as_wait().events[0].handler
    return None

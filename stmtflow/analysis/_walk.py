"""Read-only queries over a statement tree: `children`, `walk` and the ``find_*`` look-ups.

The interpreter does not use `walk` to execute; validation, rendering and compatibility checks
do. What a statement holds is its kind's to say (`stmtflow.dsl._kind.Kind.children`).

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

from stmtflow.dsl._kind import kind_of
from stmtflow.dsl._statements import On, Statement, Step, WaitFor
from stmtflow.state import CallbackRequest

__all__ = ["children", "find_handler", "find_step", "find_waiting_step", "walk"]


def children(stmt: object) -> tuple[Any, ...]:
    """The statements directly inside ``stmt``, in order (none for what is not a statement).

    Sections hold statements; every other container holds sections (an ``If`` one per branch,
    ``Else`` last), cases (``Switch``) or events (``Wait``, a ``Sleep`` its timer's).
    """
    kind = kind_of(stmt)
    return () if kind is None else kind.children(stmt)


def walk(stmt: Statement) -> Iterator[Statement]:
    """Every statement of the tree under ``stmt`` (``stmt`` first), depth first, in order."""
    stack: list[Any] = [stmt]
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
    """The handler of the event ``req.name`` (an ``On``, a ``Sleep``'s timer too), or None."""
    event = req if isinstance(req, str) else req.name
    for node in walk(section):
        if isinstance(node, On) and node.event == event:
            return node.handler
    return None

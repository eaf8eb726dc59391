"""Definition checks: `validate` raises once with every problem, `definition_problems` lists them.

Each problem is one line that names the statement and where it sits, as a path written the way
the definition is: ``S[2]`` is the third top-level statement, ``S[2].For('poll')[0]`` the first
statement of that loop's body, ``S[3].If[1]``/``.ElseIf#1``/``.Else`` the branches of an ``If``,
``S[4].Case#2``/``.Default`` the cases of a ``Switch``, ``S[5].On('paid')`` an event of a
``Wait``. ``docs/validation.md`` lists every check with its message.

Example:
    >>> import stmtflow as sf
    >>> for issue in definition_problems(sf.S(sf.Step("a", print), sf.Break())):
    ...     print(issue)
    Break at S[1]: Break must be inside a For of the same thread body
"""

from __future__ import annotations

import inspect
import reprlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, assert_never

from stmtflow.analysis._walk import children, statement_name
from stmtflow.dsl._statements import (
    Break,
    Case,
    Continue,
    Default,
    For,
    Go,
    If,
    On,
    RetryPolicy,
    Return,
    Section,
    Sleep,
    Step,
    Switch,
    Wait,
    WaitFor,
)
from stmtflow.errors import DefinitionError
from stmtflow.state import MAIN_THREAD

__all__ = ["Site", "definition_problems", "sites", "validate"]

_STATEMENTS = (
    Section,
    Step,
    If,
    Switch,
    Case,
    Default,
    For,
    Break,
    Continue,
    Return,
    Go,
    Wait,
    On,
    WaitFor,
    Sleep,
)
_BLOCKING = (Step, Wait, Sleep, WaitFor)
_EXPECTED: dict[type, str] = {Switch: "a Case or Default", Wait: "an On event"}


def validate(section: object) -> None:
    """Check a definition; raise `DefinitionError` listing every problem at once.

    Args:
        section: what a workflow's ``definition()`` returned (an ``S(...)``).

    Raises:
        DefinitionError: with ``.issues``, one line per problem, when there is any.

    Example:
        >>> import stmtflow as sf
        >>> validate(sf.S(sf.Step("charge", print)))
        >>> try:
        ...     validate(sf.S(sf.Step("", print), sf.Wait("pay")))
        ... except sf.DefinitionError as exc:
        ...     print(*exc.issues, sep="\\n")
        Step '' at S[0]: name must be a non-empty string, got ''
        Wait 'pay' at S[1]: a Wait needs at least one event (On or OnEvent)
    """
    issues = definition_problems(section)
    if issues:
        raise DefinitionError(issues)


def definition_problems(section: object) -> list[str]:
    """Every problem of a definition, one readable line each; empty when it is valid.

    Example:
        >>> import stmtflow as sf
        >>> definition_problems(sf.S(sf.Step("a", print)))
        []
        >>> definition_problems(sf.S(sf.Step("a", print), sf.Sleep("a", 5)))[0]
        "Sleep 'a' at S[1]: duration must be a non-negative timedelta, got int 5"
    """
    issues: list[str] = []
    if not isinstance(section, Section):
        issues.append(f"the definition must be a Section built with S(...), got {_what(section)}")
        if not isinstance(section, _STATEMENTS):
            return issues
    owners: dict[str, list[str]] = {}
    for site in sites(section):
        issues.extend(f"{site.describe()}: {problem}" for problem in _problems(site))
        name = statement_name(site.node)
        if isinstance(name, str) and name:
            owners.setdefault(name, []).append(site.describe())
        if isinstance(site.node, Sleep) and isinstance(site.node.name, str) and site.node.name:
            owners.setdefault(site.node.event, []).append(f"{site.describe()} (its timer event)")
    issues.extend(
        f"duplicate name {name!r}: {', '.join(where)} "
        "(statement and event names share one namespace)"
        for name, where in owners.items()
        if len(where) > 1
    )
    return issues


@dataclass(frozen=True, slots=True)
class Site:
    """A node of a definition and where it sits.

    Attributes:
        node: the statement (or whatever non-statement value was found in its place).
        path: where it is, e.g. ``S[1].For('poll')[0]``.
        parent: the containing node, None for the root.
        loop: the innermost ``For`` around it in the same thread body, if any.
        thread: the innermost ``Go`` whose body holds it, None in the main thread's body.
    """

    node: object
    path: str
    parent: object | None = None
    loop: For | None = None
    thread: Go | None = None

    def describe(self) -> str:
        """The node and its path, e.g. ``Step 'charge' at S[2]``."""
        if not isinstance(self.node, _STATEMENTS) or isinstance(self.node, Section):
            return self.path
        name = statement_name(self.node)
        kind = type(self.node).__name__
        label = kind if name is None else f"{kind} {name!r}"
        return f"{label} at {self.path}"


def sites(root: object) -> Iterator[Site]:
    """Every node under ``root`` (``root`` first), depth first, with its path and context.

    Example:
        >>> import stmtflow as sf
        >>> [s.path for s in sites(sf.S(sf.For("poll", True, sf.Step("check", print))))]
        ['S', 'S[0]', "S[0].For('poll')", "S[0].For('poll')[0]"]
    """
    stack = [Site(root, "S")]
    while stack:
        site = stack.pop()
        yield site
        node = site.node
        kids = children(node) if isinstance(node, _STATEMENTS) else ()
        loop = node if isinstance(node, For) else None if isinstance(node, Go) else site.loop
        thread = node if isinstance(node, Go) else site.thread
        stack.extend(
            Site(kid, _child_path(site, index, kid), node, loop, thread)
            for index, kid in reversed(list(enumerate(kids)))
        )


def _child_path(parent: Site, index: int, kid: object) -> str:
    node, path = parent.node, parent.path
    match node:
        case Section():
            return f"{path}[{index}]"
        case If():
            if index == 0:
                return f"{path}.If"
            return f"{path}.Else" if index == len(node.branches) else f"{path}.ElseIf#{index}"
        case Switch():
            if isinstance(kid, Case):
                return f"{path}.Case#{index + 1}"
            return f"{path}.Default" if isinstance(kid, Default) else f"{path}.cases[{index}]"
        case Wait():
            return f"{path}.On({kid.event!r})" if isinstance(kid, On) else f"{path}.events[{index}]"
        case For() | Go():
            return f"{path}.{type(node).__name__}({node.name!r})"
        case _:
            return path


def _problems(site: Site) -> list[str]:
    """What is wrong with one node, given where it is."""
    node, parent = site.node, site.parent
    if not isinstance(node, _STATEMENTS):
        expected = _EXPECTED.get(type(parent), "a statement")
        return [f"expected {expected}, got {_what(node)}"]
    if isinstance(parent, Switch) and not isinstance(node, Case | Default):
        return ["a Switch holds only Case and Default"]
    if isinstance(parent, Wait) and not isinstance(node, On):
        return ["a Wait holds only On events (On or OnEvent)"]
    problems: list[str] = []
    if isinstance(node, Case | Default) and not isinstance(parent, Switch):
        problems.append(f"{type(node).__name__} must be inside a Switch")
    if isinstance(node, On) and not isinstance(parent, Wait):
        problems.append("On must be inside a Wait")
    match node:
        case Step():
            problems += _name(node.name)
            problems += _callable("action", node.action, required=True)
            if node.retry is not None and not isinstance(node.retry, RetryPolicy):
                problems.append(f"retry must be a RetryPolicy or None, got {_what(node.retry)}")
        case If():
            for branch in node.branches:
                problems += _cond(branch.cond)
        case Switch():
            problems += _switch(node)
        case Case():
            problems += _cond(node.cond)
        case For():
            problems += _name(node.name) + _cond(node.cond)
            if not _pauses(node.body):
                note = " (a Go body runs on another thread and does not count)"
                problems.append(
                    "its body holds no Step, Wait, Sleep or WaitFor, so an iteration could never "
                    f"pause{note if _has_go(node) else ''}"
                )
        case Break() | Continue():
            if site.loop is None:
                problems.append(
                    f"{type(node).__name__} must be inside a For of the same thread body"
                    + (" (a Go body starts a new thread)" if site.thread is not None else "")
                )
        case Go():
            problems += _name(node.name) + _go_id(node)
        case Wait():
            problems += _name(node.name)
            if not node.events:
                problems.append("a Wait needs at least one event (On or OnEvent)")
        case On():
            problems += _name(node.event, what="event name")
            if not callable(getattr(node.handler, "handle", None)):
                hint = " (use OnEvent(event, fn) for a function)" if callable(node.handler) else ""
                problems.append(
                    f"handler must have a callable handle method, got {_what(node.handler)}{hint}"
                )
        case WaitFor():
            problems += _name(node.name) + _cond(node.cond)
            if node.handler is not None:
                problems += _callable("handler", node.handler, required=False)
        case Sleep():
            problems += _name(node.name)
            if not isinstance(node.duration, timedelta) or node.duration < timedelta(0):
                problems.append(
                    f"duration must be a non-negative timedelta, got {_what(node.duration)}"
                )
        case Section() | Default() | Return():
            pass
        case _:
            assert_never(node)
    return problems


def _switch(node: Switch) -> list[str]:
    defaults = [index for index, case in enumerate(node.cases) if isinstance(case, Default)]
    problems = []
    if len(defaults) > 1:
        problems.append(f"a Switch takes at most one Default, got {len(defaults)}")
    if defaults and any(isinstance(case, Case) for case in node.cases[defaults[0] + 1 :]):
        problems.append("a Case after the Default can never run; put the Default last")
    return problems


def _go_id(node: Go) -> list[str]:
    go_id = node.id
    if go_id is not None and not isinstance(go_id, str) and not callable(go_id):
        return [f"id must be a string, a zero-argument callable or None, got {_what(go_id)}"]
    if callable(go_id):
        return _callable("id", go_id, required=True)
    if go_id == "":
        return ["id must not be empty (leave it out to use the name)"]
    if (node.name if go_id is None else go_id) == MAIN_THREAD:
        return [f"thread id {MAIN_THREAD!r} is reserved for the main thread"]
    return []


def _name(name: object, what: str = "name") -> list[str]:
    if isinstance(name, str) and name:
        return []
    return [f"{what} must be a non-empty string, got {name!r}"]


def _cond(cond: object) -> list[str]:
    if isinstance(cond, bool):
        return []
    if callable(cond):
        return _callable("condition", cond, required=True)
    return [
        f"condition must be a bool or a zero-argument callable, got {_what(cond)} "
        "(wrap an eager value in bool(...))"
    ]


def _callable(what: str, fn: object, *, required: bool) -> list[str]:
    """``fn`` must be callable with no arguments (None allowed unless ``required``)."""
    if fn is None and not required:
        return []
    if not callable(fn):
        return [f"{what} must be a zero-argument callable, got {_what(fn)}"]
    if not _takes_no_arguments(fn):
        return [f"{what} must take no arguments, but {_what(fn)} requires some"]
    return []


def _takes_no_arguments(fn: Callable[..., Any]) -> bool:
    try:
        inspect.signature(fn).bind()
    except TypeError:
        return False
    except ValueError:  # no signature available (some builtins): give it the benefit of doubt
        return True
    return True


def _pauses(stmt: object) -> bool:
    """True when ``stmt`` holds a blocking statement on the same thread (not under a ``Go``)."""
    if isinstance(stmt, _BLOCKING):
        return True
    if isinstance(stmt, Go) or not isinstance(stmt, _STATEMENTS):
        return False
    return any(_pauses(kid) for kid in children(stmt))


def _has_go(loop: For) -> bool:
    return any(isinstance(site.node, Go) for site in sites(loop.body))


def _what(value: object) -> str:
    """A short description of a value for a message: its kind and a clipped repr."""
    if isinstance(value, _STATEMENTS) and not isinstance(value, Section):
        name = statement_name(value)
        return type(value).__name__ if name is None else f"{type(value).__name__} {name!r}"
    if inspect.isfunction(value) or inspect.ismethod(value):
        return f"function {value.__qualname__}"
    if isinstance(value, timedelta):
        return f"timedelta {value if value >= timedelta(0) else f'-{-value}'}"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} (pass statements as separate arguments, or wrap in S())"
    return f"{type(value).__name__} {reprlib.repr(value)}"

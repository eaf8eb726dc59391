"""The statement DSL: frozen values a workflow's ``definition()`` returns.

Each kind lives in a module of its own with its rules beside it (`stmtflow.dsl._kind` says
what a kind's rules are); this module gathers them into the `Statement` union. Callables
(actions, lazy conditions, handlers) are kept out of equality and repr, so two definitions
compare equal when their shape and names do.

Example:
    >>> import stmtflow as sf
    >>> tree = sf.S(
    ...     sf.Step("hello", lambda: None),
    ...     sf.If(True, sf.Step("yes", lambda: None)).Else(sf.Step("no", lambda: None)),
    ... )
    >>> [type(s).__name__ for s in tree.body]
    ['Step', 'If']
"""

from __future__ import annotations

from typing import TypeAlias

from stmtflow.dsl._branch import Branch, Case, Cond, Default, If, Switch
from stmtflow.dsl._child import Call, Child, ChildResult, Start
from stmtflow.dsl._foreach import ForEach
from stmtflow.dsl._go import Go, GoArg, GoBody, GoId, Return
from stmtflow.dsl._human import Ask
from stmtflow.dsl._join import Join, Until
from stmtflow.dsl._lock import Lock
from stmtflow.dsl._loop import Break, Continue, For
from stmtflow.dsl._section import S, Section
from stmtflow.dsl._step import Action, RetryPolicy, Step
from stmtflow.dsl._try import CatchClause, Compensate, ErrorSpec, Try
from stmtflow.dsl._wait import On, OnEvent, Sleep, Wait
from stmtflow.dsl._waitfor import WaitFor

__all__ = [
    "Action",
    "Ask",
    "Branch",
    "Break",
    "Call",
    "Case",
    "CatchClause",
    "Child",
    "ChildResult",
    "Compensate",
    "Cond",
    "Continue",
    "Default",
    "ErrorSpec",
    "For",
    "ForEach",
    "Go",
    "GoArg",
    "GoBody",
    "GoId",
    "If",
    "Join",
    "Lock",
    "On",
    "OnEvent",
    "RetryPolicy",
    "Return",
    "S",
    "Section",
    "Sleep",
    "Start",
    "Statement",
    "Step",
    "Switch",
    "Try",
    "Until",
    "Wait",
    "WaitFor",
]

Statement: TypeAlias = (
    Section
    | Step
    | If
    | Switch
    | Case
    | Default
    | For
    | Break
    | Continue
    | Return
    | Go
    | Join
    | ForEach
    | Wait
    | On
    | WaitFor
    | Try
    | Compensate
    | Lock
)
"""Every statement kind (a `Sleep`, an `Ask` and a `Call` are `Wait`s, a `Start` is a `Step`).
``Case``/``Default`` live only in a `Switch`, ``On`` only in a `Wait`. A new kind is added here
and registered in its own module."""

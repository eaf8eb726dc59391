"""Waiting for a person: the `HumanInput` handler and `Ask`, the `Wait` built around one.

A `HumanInput` is an event a person answers with a typed form: its input schema is a pydantic
model's JSON Schema, so a form can be drawn from it and a bad answer is refused with every
problem listed (`CallbackInputError`), changing nothing. Its setup records who is asked what and
when (`Asked`, kept in the event's ``setup_data``), which is what the engine lists in
``engine.inputs()``.

Example:
    >>> from pydantic import BaseModel
    >>> class Decision(BaseModel):
    ...     approve: bool
    >>> ask = Ask("review", Decision, prompt="Approve?", timeout=timedelta(days=2))
    >>> [on.event for on in ask.events]
    ['review.answer', 'review.timeout']
"""

from __future__ import annotations

import json
import typing
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, NamedTuple, TypeAlias

import jsonschema
from pydantic import BaseModel, TypeAdapter

from stmtflow.dsl._checks import name_problems, what
from stmtflow.dsl._context import current_time
from stmtflow.dsl._handlers import Timer, parse_input
from stmtflow.dsl._kind import Drawing, Exit, Site, duration_text, register, seconds
from stmtflow.dsl._wait import On, Wait, WaitKind
from stmtflow.state import CallbackRequest, WaitEvent

__all__ = ["PERSON_FACING", "Ask", "Asked", "HumanInput", "Text", "asked", "asked_data"]

Text: TypeAlias = str | Callable[[], str]
"""A prompt or an assignee: a string, or a zero-argument callable evaluated when the question is
asked (so a static definition can still name the person from the data)."""

Model: TypeAlias = type[BaseModel]
"""A form: the pydantic model a person's answer must fit."""

PERSON_FACING = frozenset({"HumanInput", "Escalation"})
"""The handler types of events a person answers: what ``engine.inputs()`` lists."""


class Asked(NamedTuple):
    """What a person-facing event's setup recorded: the question, to whom, and when."""

    prompt: str
    assignee: str | None
    asked_at: datetime


def asked_data(prompt: str, assignee: str | None, at: datetime) -> str:
    """The ``setup_data`` of a person-facing event (JSON, read back by `asked`)."""
    at_text = at.astimezone(UTC).isoformat()
    return json.dumps({"prompt": prompt, "assignee": assignee, "asked_at": at_text})


def asked(event: WaitEvent) -> Asked | None:
    """What a set-up person-facing event asks (None for any other event, or before setup)."""
    if event.type not in PERSON_FACING or not event.req.setup_data:
        return None
    try:
        data = json.loads(event.req.setup_data)
        return Asked(
            str(data["prompt"]),
            None if data["assignee"] is None else str(data["assignee"]),
            datetime.fromisoformat(data["asked_at"]),
        )
    except (ValueError, KeyError, TypeError):
        return None  # set up by a handler of that type name written elsewhere: not ours


def _text(value: Text | None, name: str) -> str | None:
    if callable(value):
        value = value()
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return value


class _Form:
    """A model's JSON Schema, its validator and adapter, computed once per model class."""

    __slots__ = ("adapter", "schema", "validator")

    def __init__(self, model: type[BaseModel]) -> None:
        self.adapter: TypeAdapter[Any] = TypeAdapter(model)
        self.schema: dict[str, Any] = model.model_json_schema()
        self.validator = jsonschema.Draft202012Validator(self.schema)


_forms: weakref.WeakKeyDictionary[type, _Form] = weakref.WeakKeyDictionary()


def _form(model: type[BaseModel]) -> _Form:
    form = _forms.get(model)
    if form is None:
        form = _forms[model] = _Form(model)
    return form


class HumanInput:
    """An event answered by a person with a form: ``model``'s fields.

    ``prompt`` says what is asked and ``assignee`` whom (each a string or a zero-argument
    callable, evaluated when the wait arms the event); both are recorded on the event and listed
    by ``engine.inputs()``. The input is checked against ``model``'s JSON Schema, then parsed;
    a bad one raises `CallbackInputError` listing each problem and changes nothing. ``fn``
    (optional, plain or ``async``) receives the parsed model; what it returns goes back to the
    sender.

    Example:
        >>> from pydantic import BaseModel
        >>> class Approval(BaseModel):
        ...     approve: bool
        >>> form = HumanInput(Approval, prompt="Approve the trip?", assignee="ana")
        >>> form.schemas()[0]["required"]
        ['approve']
    """

    type = "HumanInput"

    __slots__ = ("assignee", "fn", "model", "prompt")

    def __init__(
        self,
        model: Model,
        *,
        prompt: Text,
        assignee: Text | None = None,
        fn: Callable[[Any], Any] | None = None,
    ) -> None:
        problems = _problems(model, prompt, assignee, fn)
        if problems:
            raise TypeError("invalid HumanInput: " + "; ".join(problems))
        self.model = model
        self.prompt = prompt
        self.assignee = assignee
        self.fn = fn

    def schemas(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pair ``(input_schema, output_schema)``: the model's, and that of ``fn``'s result."""
        if self.fn is None:
            return _form(self.model).schema, {"type": "null"}
        hints = typing.get_type_hints(self.fn)
        return _form(self.model).schema, TypeAdapter(hints.get("return", Any)).json_schema()

    def setup(self, req: CallbackRequest) -> str:
        """Record the question: the prompt and assignee as they read now, and the time."""
        prompt = _text(self.prompt, "prompt") or ""
        return asked_data(prompt, _text(self.assignee, "assignee"), current_time())

    def parse(self, req: CallbackRequest, input: Any) -> BaseModel:
        """Check ``input`` against the model's schema and parse it; raise on any problem."""
        form = _form(self.model)
        parsed: BaseModel = parse_input(form.validator, form.adapter, req.name, input)
        return parsed

    def handle(self, req: CallbackRequest, input: Any) -> Any:
        """Parse the answer, then pass the model to ``fn``; returns what ``fn`` returns."""
        parsed = self.parse(req, input)
        return None if self.fn is None else self.fn(parsed)


def _problems(model: object, prompt: object, assignee: object, fn: object) -> list[str]:
    problems = []
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        problems.append(f"model must be a pydantic BaseModel class, got {what(model)}")
    if not (callable(prompt) or (isinstance(prompt, str) and prompt)):
        problems.append(f"prompt must be a non-empty string or a callable, got {what(prompt)}")
    if not (assignee is None or callable(assignee) or isinstance(assignee, str)):
        problems.append(f"assignee must be a string, a callable or None, got {what(assignee)}")
    if fn is not None and not callable(fn):
        problems.append(f"fn must be callable or None, got {what(fn)}")
    return problems


@dataclass(frozen=True, slots=True, init=False)
class Ask(Wait):
    """Ask a person for ``model`` and wait: a `Wait` named ``name`` with a `HumanInput` event
    ``f"{name}.answer"`` and, with ``timeout``, a `Timer` event ``f"{name}.timeout"``.

    The answer's parsed model goes to ``fn`` (optional); on timeout ``fn`` is not called and the
    thread goes on all the same (check the data to tell which happened). It *is* that `Wait`, so
    everything that runs, routes or checks waits treats it as one.

    Example:
        >>> from pydantic import BaseModel
        >>> class Ok(BaseModel):
        ...     ok: bool
        >>> ask = Ask("confirm", Ok, prompt="Go ahead?")
        >>> ask.event, ask.timeout_event, isinstance(ask, Wait)
        ('confirm.answer', None, True)
    """

    model: type[BaseModel]
    fn: Callable[[Any], Any] | None = field(compare=False, repr=False)
    prompt: Text = field(compare=False)
    assignee: Text | None = field(compare=False)
    timeout: timedelta | None
    _built: tuple[On, ...] | None = field(compare=False, repr=False)

    def __init__(
        self,
        name: str,
        model: type[BaseModel],
        fn: Callable[[Any], Any] | None = None,
        *,
        prompt: Text,
        assignee: Text | None = None,
        timeout: timedelta | None = None,
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "prompt", prompt)
        object.__setattr__(self, "assignee", assignee)
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "_built", None)

    @property
    def event(self) -> str:
        """The answer's event name: the ask's name followed by ``.answer``."""
        return f"{self.name}.answer"

    @property
    def timeout_event(self) -> str | None:
        """The timer's event name, ``f"{name}.timeout"``; None without a timeout."""
        return None if self.timeout is None else f"{self.name}.timeout"


def _ask_events(self: Ask) -> tuple[On, ...]:
    """An ask's events, built on first use (most rebuilds of a definition never look at them).
    Empty while the ask is invalid (the definition check reports why)."""
    built = self._built
    if built is None:
        built = ()
        if not _ask_problems(self):
            form = HumanInput(self.model, prompt=self.prompt, assignee=self.assignee, fn=self.fn)
            built = (On(self.event, form),)
            if self.timeout is not None:
                timer = Timer(seconds=self.timeout.total_seconds())
                built += (On(f"{self.name}.timeout", timer),)
        object.__setattr__(self, "_built", built)
    return built


# As for `Sleep`: dataclass(slots=True) drops a class attribute named like the Wait's field.
Ask.events = property(_ask_events)  # type: ignore[assignment, misc]


def _ask_problems(ask: Ask) -> list[str]:
    problems = _problems(ask.model, ask.prompt, ask.assignee, ask.fn)
    timeout = ask.timeout
    if timeout is not None and (not isinstance(timeout, timedelta) or timeout <= timedelta(0)):
        problems.append(f"timeout must be a positive timedelta or None, got {what(timeout)}")
    return problems


class AskKind(WaitKind):
    statement: ClassVar[type] = Ask

    def child_path(self, stmt: Wait, index: int, kid: object, path: str) -> str:
        return f"{path} (its {'answer' if index == 0 else 'timeout'} event)"

    def problems(self, stmt: Wait, site: Site) -> list[str]:
        assert isinstance(stmt, Ask)
        return name_problems(stmt.name) + _ask_problems(stmt)

    def json(self, stmt: Wait, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        assert isinstance(stmt, Ask)
        return {
            "type": self.label,
            "name": stmt.name,
            "event": stmt.event,
            "model": getattr(stmt.model, "__name__", repr(stmt.model)),
            "prompt": "lazy" if callable(stmt.prompt) else stmt.prompt,
            "assignee": "lazy" if callable(stmt.assignee) else stmt.assignee,
            "timeout": None if stmt.timeout is None else seconds(stmt.timeout),
            "timeout_event": stmt.timeout_event,
        }

    def draw(self, stmt: Wait, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        assert isinstance(stmt, Ask)
        who = f" ({stmt.assignee})" if isinstance(stmt.assignee, str) else ""
        head = drawing.box(entry, f"Ask {stmt.name}{who}", "wait", stmt.name)
        exits = [Exit(head, f"{stmt.event} · HumanInput", stmt.event)]
        if stmt.timeout is not None and stmt.timeout_event is not None:
            label = f"{stmt.timeout_event} · after {duration_text(stmt.timeout)}"
            exits.append(Exit(head, label, stmt.timeout_event))
        return exits


register(AskKind())

"""What a ``Wait`` waits on: handlers of external events.

A handler needs only ``handle``; ``setup``, ``teardown`` and ``type`` are optional (see
`Handler`). Any of the three methods may be ``async`` when the workflow is driven by ``aresume``.

Example:
    >>> from pydantic import BaseModel
    >>> class Approval(BaseModel):
    ...     approved: bool
    >>> def approve(answer: Approval) -> bool:
    ...     return answer.approved
    >>> FunctionHandler(approve).schemas()[1]
    {'type': 'boolean'}
"""

from __future__ import annotations

import inspect
import typing
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import jsonschema
from pydantic import TypeAdapter, ValidationError

from stmtflow.dsl._context import current_time
from stmtflow.errors import CallbackInputError
from stmtflow.state import CallbackRequest

__all__ = [
    "BaseHandler",
    "FunctionHandler",
    "Handler",
    "Timer",
    "handler_type",
    "parse_input",
]


@runtime_checkable
class Handler(Protocol):
    """An external event's handler. Only ``handle`` is required.

    Optional members, looked up by name:

    - ``type: str`` — shown in state and diagrams; default the class name.
    - ``setup(req) -> str`` — arm the event outside (register a webhook, schedule a timer); the
      returned string is stored as ``req.setup_data``.
    - ``teardown(req, handled: bool)`` — disarm it; ``handled`` is True for the event that fired.

    ``handle`` and ``teardown`` receive the stored request, ``setup_data`` included.
    """

    def handle(self, req: CallbackRequest, input: Any) -> Any:
        """The event arrived with ``input``; the return value goes back to the sender."""
        ...


class BaseHandler:
    """A convenient base for handlers: no-op ``setup`` and ``teardown``, ``handle`` to write.

    Example:
        >>> class Webhook(BaseHandler):
        ...     def setup(self, req):
        ...         return f"https://hooks.example/{req.workflow_id}/{req.name}"
        ...     def handle(self, req, input):
        ...         return {"ok": True}
        >>> Webhook().type
        'Webhook'
    """

    @property
    def type(self) -> str:
        return type(self).__name__

    def setup(self, req: CallbackRequest) -> str:
        return ""

    def handle(self, req: CallbackRequest, input: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.handle is not implemented")

    def teardown(self, req: CallbackRequest, handled: bool) -> None:
        return None


def handler_type(handler: object) -> str:
    """The handler's ``type`` attribute if it has a string one, else its class name."""
    kind = getattr(handler, "type", None)
    return kind if isinstance(kind, str) and kind else type(handler).__name__


class _Signature:
    """Pydantic adapters and JSON Schemas for one function, computed once and cached."""

    __slots__ = ("in_adapter", "in_schema", "out_adapter", "out_schema", "takes_input", "validator")

    def __init__(self, fn: Callable[..., Any]) -> None:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if len(params) > 1:
            raise TypeError(
                f"a FunctionHandler function takes at most one argument (the input); "
                f"{getattr(fn, '__qualname__', fn)!r} takes {len(params)}"
            )
        hints = typing.get_type_hints(fn)
        self.takes_input = bool(params)
        in_type: Any = hints.get(params[0].name, Any) if params else None
        out_type: Any = hints.get("return", Any)
        self.in_adapter: TypeAdapter[Any] = TypeAdapter(in_type)
        self.out_adapter: TypeAdapter[Any] = TypeAdapter(out_type)
        self.in_schema: dict[str, Any] = self.in_adapter.json_schema()
        self.out_schema: dict[str, Any] = self.out_adapter.json_schema()
        self.validator = jsonschema.Draft202012Validator(self.in_schema)


_signatures: weakref.WeakKeyDictionary[Any, _Signature] = weakref.WeakKeyDictionary()


def _signature_of(fn: Callable[..., Any]) -> _Signature:
    # Bound methods are rebuilt with every definition(); cache by the underlying function.
    # Weakly: a lambda or closure made by each definition() call must not outlive it (with the
    # workflow it closes over), or a long-running worker grows with every callback.
    key = getattr(fn, "__func__", fn)
    try:
        sig = _signatures.get(key)
    except TypeError:  # not weakly referenceable: computed on each use
        return _Signature(fn)
    if sig is None:
        sig = _signatures[key] = _Signature(fn)
    return sig


def parse_input(
    validator: jsonschema.protocols.Validator, adapter: TypeAdapter[Any], event: str, input: Any
) -> Any:
    """``input`` checked against a JSON Schema (``validator``), then parsed by ``adapter``.

    Raises `CallbackInputError` listing every problem the schema finds (each as
    ``path: message``), or those pydantic finds when the schema lets the value through.
    """
    problems = [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(input)'}: {err.message}"
        for err in sorted(validator.iter_errors(input), key=lambda e: list(e.path))
    ]
    if problems:
        raise CallbackInputError(f"invalid input for event {event!r}", problems)
    try:
        return adapter.validate_python(input)
    except ValidationError as exc:
        raise CallbackInputError(
            f"invalid input for event {event!r}",
            [
                f"{'/'.join(str(p) for p in e['loc']) or '(input)'}: {e['msg']}"
                for e in exc.errors()
            ],
        ) from exc


class FunctionHandler:
    """A handler from a typed function ``fn(input: In) -> Out`` (or ``fn()`` for no input).

    The input is checked against the JSON Schema of ``In`` (from pydantic) with ``jsonschema``
    before ``fn`` runs; a bad input raises `CallbackInputError` listing each problem. ``fn``
    receives the parsed value (a model instance when ``In`` is a model). A missing annotation
    means any JSON value. ``fn`` may be ``async`` under ``aresume``/``ahandle_callback``.

    Example:
        >>> def pay(amount: int) -> str:
        ...     return f"paid {amount}"
        >>> h = FunctionHandler(pay)
        >>> h.handle(CallbackRequest(name="paid"), 12)
        'paid 12'
        >>> h.schemas()
        ({'type': 'integer'}, {'type': 'string'})
    """

    type = "FunctionHandler"

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TypeError(f"FunctionHandler needs a callable, got {fn!r}")
        self.fn = fn

    def schemas(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pair ``(input_schema, output_schema)`` as JSON Schema dicts."""
        sig = _signature_of(self.fn)
        return sig.in_schema, sig.out_schema

    def parse(self, req: CallbackRequest, input: Any) -> Any:
        """Validate ``input`` against the input schema and parse it; raise on any problem."""
        sig = _signature_of(self.fn)
        return parse_input(sig.validator, sig.in_adapter, req.name, input)

    def handle(self, req: CallbackRequest, input: Any) -> Any:
        """Validate and parse ``input``, then call ``fn`` with it; returns what ``fn`` returns."""
        parsed = self.parse(req, input)
        if not _signature_of(self.fn).takes_input:
            return self.fn()
        return self.fn(parsed)


class Timer:
    """A handler that fires at a deadline: ``Timer(hours=24)`` or ``Timer(at=datetime)``.

    ``setup`` records the deadline (ISO 8601, UTC) as ``setup_data``, computed from the
    interpreter's clock (``resume(..., now=...)``); the runtime fires the event when it is due.
    Delivering the event by hand (``handle_callback``) is fine too, e.g. in a test.

    Example:
        >>> Timer(minutes=90).delay
        datetime.timedelta(seconds=5400)
    """

    type = "Timer"

    __slots__ = ("at", "delay")

    def __init__(
        self,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        *,
        at: datetime | None = None,
    ) -> None:
        delay = timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days)
        if at is not None and delay:
            raise ValueError("Timer takes either a duration or at=, not both")
        if delay < timedelta(0):
            raise ValueError(f"a Timer's duration must not be negative, got {delay}")
        if at is not None and at.tzinfo is None:
            raise ValueError("Timer(at=...) needs an aware datetime (with a timezone)")
        self.delay = delay
        self.at = at

    def setup(self, req: CallbackRequest) -> str:
        """Record the deadline."""
        due = self.at if self.at is not None else current_time() + self.delay
        return due.astimezone(UTC).isoformat()

    def handle(self, req: CallbackRequest, input: Any) -> None:
        """The timer fired; there is nothing to return."""
        return None

    @staticmethod
    def deadline(req: CallbackRequest) -> datetime | None:
        """The deadline a Timer's setup recorded in ``req.setup_data`` (None before setup)."""
        return datetime.fromisoformat(req.setup_data) if req.setup_data else None

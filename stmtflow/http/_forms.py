"""HTML form fields from an event's JSON Schema, and the submitted form back into JSON.

An object schema becomes one field per property; any other schema one field named
``value``. A string, number, integer or boolean becomes an input of that kind, an ``enum`` a
select; a property the form cannot draw (a nested object, an array) a JSON text area. The
value read back is converted to the property's type; the handler's own validation then says
what is still wrong, so this module decides no rule of its own.

Example:
    >>> schema = {"type": "object", "properties": {"ok": {"type": "boolean"},
    ...           "qty": {"type": "integer"}}, "required": ["qty"]}
    >>> [(f.name, f.widget, f.required) for f in form_fields(schema)]
    [('ok', 'checkbox', False), ('qty', 'integer', True)]
    >>> parse_form(schema, {"qty": "3"})
    {'ok': False, 'qty': 3}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FormField", "FormProblem", "form_fields", "parse_form"]

VALUE = "value"


@dataclass(frozen=True, slots=True)
class FormField:
    """One input of an event's form."""

    name: str
    label: str
    widget: str
    """``text``, ``number``, ``integer``, ``checkbox``, ``select`` or ``json``."""
    required: bool
    options: tuple[str, ...] = ()
    values: tuple[Any, ...] = ()
    """The enum values the ``options`` stand for (enums may hold numbers)."""
    description: str | None = None
    default: Any = None


class FormProblem(ValueError):
    """A field's text cannot be read as its type."""


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return _resolve(found, root) if isinstance(found, dict) else {}
    for key in ("anyOf", "allOf"):  # Optional[X] is anyOf [X, null]: draw X
        options = [s for s in schema.get(key, []) if s.get("type") != "null"]
        if len(options) == 1:
            return {**_resolve(options[0], root), **{k: v for k, v in schema.items() if k != key}}
    return schema


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" and isinstance(schema.get("properties"), dict)


def _widget(schema: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    if "enum" in schema:
        return "select", tuple(schema["enum"])
    if "const" in schema:
        return "select", (schema["const"],)
    kind = schema.get("type")
    widgets = {"string": "text", "number": "number", "integer": "integer", "boolean": "checkbox"}
    return widgets.get(kind if isinstance(kind, str) else "", "json"), ()


def _field(name: str, schema: dict[str, Any], required: bool) -> FormField:
    widget, values = _widget(schema)
    return FormField(
        name=name,
        label=str(schema.get("title") or name),
        widget=widget,
        required=required,
        options=tuple(str(v) for v in values),
        values=values,
        description=schema.get("description"),
        default=schema.get("default"),
    )


def form_fields(schema: dict[str, Any] | None) -> list[FormField]:
    """The fields of ``schema``'s form (one ``value`` field for a schema not an object)."""
    root = schema or {}
    top = _resolve(root, root)
    if _is_object(top):
        required = set(top.get("required", []))
        return [
            _field(name, _resolve(sub, root), name in required)
            for name, sub in top["properties"].items()
        ]
    if not top:
        return []  # any input, or none: the form is a button
    return [_field(VALUE, top, True)]


def parse_form(schema: dict[str, Any] | None, form: Mapping[str, str]) -> Any:
    """The event's input from the submitted ``form`` (None for a schema-less event)."""
    root = schema or {}
    top = _resolve(root, root)
    if _is_object(top):
        value: dict[str, Any] = {}
        for field in form_fields(root):
            read = _read(field, form.get(field.name))
            if read is not _MISSING:
                value[field.name] = read
        return value
    if not top:
        return None
    read = _read(form_fields(root)[0], form.get(VALUE))
    return None if read is _MISSING else read


_MISSING = object()


def _read(field: FormField, text: str | None) -> Any:
    if field.widget == "checkbox":
        return text is not None and text not in ("", "off", "false")
    if text is None or (text == "" and not field.required):
        return _MISSING
    try:
        if field.widget == "integer":
            return int(text)
        if field.widget == "number":
            return float(text)
        if field.widget == "json":
            return json.loads(text)
    except ValueError as exc:
        raise FormProblem(f"{field.label}: {text!r} is not a valid {field.widget}") from exc
    if field.widget == "select" and text in field.options:
        return field.values[field.options.index(text)]
    return text

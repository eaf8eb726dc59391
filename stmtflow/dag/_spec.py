"""Reading a DAG file: YAML → checked against the JSON Schema → `DagSpec`, every problem at once.

Two passes, both collecting: the JSON Schema (``schema.json`` beside this module, published as
docs/dag.schema.json) checks the shape and the values (a ``max_attempts`` of 0, an unknown
``backoff``, a misspelt key); then the checks a schema cannot express: duplicate ids, a
``depends_on`` naming no step, a handler name missing from ``handlers``, and cycles (each named
by its steps, ``a -> b -> a``). The second pass looks only at the parts the first did not
refuse, so one mistake is reported once, and `DefinitionError` lists them all.

Example:
    >>> spec = parse("steps: [{id: a, handler: f}, {id: b, handler: f, depends_on: [a]}]",
    ...              handlers={"f": lambda inputs: 1})
    >>> [(s.id, s.depends_on) for s in spec.steps]
    [('a', ()), ('b', ('a',))]
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from stmtflow.errors import DefinitionError

__all__ = ["DagSpec", "Handlers", "StepSpec", "check", "parse", "schema"]

Handlers = Mapping[str, Callable[..., Any]] | object
"""What ``handlers=`` takes: a mapping of names to callables, or a module (or any object)
whose attributes are the handlers."""

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One step of the file, checked: its handlers resolved to callables."""

    id: str
    handler: Callable[..., Any]
    depends_on: tuple[str, ...] = ()
    max_attempts: int = 1
    backoff: str = "exponential"
    initial_interval: timedelta = timedelta(seconds=1)
    max_interval: timedelta = timedelta(minutes=5)
    compensate: Callable[..., Any] | None = None
    fallback: Callable[..., Any] | None = None
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class DagSpec:
    """A checked DAG: its name and its steps in file order.

    ``by_id`` finds a step by its id and ``dependents`` lists, for each step id, the steps that
    depend on it (in file order): the indexes a run follows so that finishing a step looks at
    its dependents only.
    """

    name: str
    steps: tuple[StepSpec, ...]
    by_id: dict[str, StepSpec] = field(init=False, repr=False, compare=False)
    dependents: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        later: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for s in self.steps:
            for d in s.depends_on:
                later.setdefault(d, []).append(s.id)
        object.__setattr__(self, "by_id", {s.id: s for s in self.steps})
        object.__setattr__(self, "dependents", {k: tuple(v) for k, v in later.items()})


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of a DAG file (the same text as docs/dag.schema.json)."""
    text = resources.files("stmtflow.dag").joinpath("schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def seconds(value: float | str) -> float:
    """A duration of the file in seconds: a number, or ``"500ms"``, ``"2s"``, ``"1m"``, ``"1h"``."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def read(source: str | Path) -> tuple[str, str]:
    """(text, where): ``source`` is a path (a `Path`, or a one-line string ending in .yaml,
    .yml or .json) or the YAML text itself."""
    is_path = isinstance(source, Path) or (
        "\n" not in source and source.strip().lower().endswith((".yaml", ".yml", ".json"))
    )
    if not is_path:
        return str(source), "<text>"
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except OSError as exc:
        raise DefinitionError(f"cannot read the DAG file {str(path)!r}: {exc}") from exc


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML safely (no Python objects); a syntax error is a `DefinitionError`."""
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - the extra pulls it in
        raise ImportError("YAML DAGs need PyYAML: pip install 'stmtflow[dag]'") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{where}: not valid YAML: {exc}") from exc


def _where(path: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "file"


def _schema_problems(doc: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path))):
        message = error.message
        if error.validator == "not":
            message = f"{error.instance!r} is reserved (handlers see the run's input under it)"
        elif error.validator == "oneOf":  # only durations have a oneOf
            message = (
                f"{error.instance!r} is not a duration (seconds >= 0, or a string such as"
                " '500ms', '2s', '1.5m', '1h')"
            )
        problems.append(f"{_where(error.absolute_path)}: {message}")
    return problems


def _lookup(handlers: Handlers, name: str) -> Callable[..., Any] | None:
    found = handlers.get(name) if isinstance(handlers, Mapping) else getattr(handlers, name, None)
    return found if callable(found) else None


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """Every cycle found by one depth-first search, each as the steps along it."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in edges.get(node, []):
            if state.get(dep) == 1:
                found.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node)
    return found


def _step_problems(doc: Any, handlers: Handlers | None) -> list[str]:
    """The checks a schema cannot make, on the steps whose shape it accepted."""
    if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list):
        return []
    problems: list[str] = []
    ids: dict[str, int] = {}
    for index, step in enumerate(doc["steps"]):
        if isinstance(step, dict) and isinstance(step.get("id"), str):
            if step["id"] in ids:
                first = ids[step["id"]]
                problems.append(
                    f"steps[{index}]: duplicate id {step['id']!r} (also steps[{first}])"
                )
            else:
                ids[step["id"]] = index
    edges: dict[str, list[str]] = {}
    for index, step in enumerate(doc["steps"]):
        if not isinstance(step, dict):
            continue
        label = (
            f"steps[{index}] ({step['id']!r})"
            if isinstance(step.get("id"), str)
            else f"steps[{index}]"
        )
        for key in ("handler", "compensate", "fallback"):
            name = step.get(key)
            if handlers is None or not isinstance(name, str) or not name:
                continue
            if _lookup(handlers, name) is None:
                problems.append(f"{label}.{key}: unknown handler {name!r}")
        deps = step.get("depends_on")
        if isinstance(deps, list):
            for dep in deps:
                if isinstance(dep, str) and dep not in ids:
                    problems.append(f"{label}.depends_on: unknown step id {dep!r}")
            if isinstance(step.get("id"), str):
                edges.setdefault(step["id"], []).extend(
                    d for d in deps if isinstance(d, str) and d in ids
                )
        timeout = step.get("timeout")
        if isinstance(timeout, int | float | str) and not isinstance(timeout, bool):
            try:
                if seconds(timeout) <= 0:
                    problems.append(f"{label}.timeout: must be more than 0")
            except ValueError:
                pass  # the schema reported it
        retry = step.get("retry")
        if isinstance(retry, dict):
            low, high = retry.get("initial_interval"), retry.get("max_interval")
            try:
                if low is not None and high is not None and seconds(high) < seconds(low):
                    problems.append(f"{label}.retry: max_interval is less than initial_interval")
            except ValueError:
                pass  # the schema reported it
    for cycle in _cycles(edges):
        problems.append("cycle: " + " -> ".join(cycle) + " (each depends on the one after it)")
    return problems


def check(source: str | Path, *, handlers: Handlers | None = None) -> tuple[Any, list[str]]:
    """(the parsed file, every problem found in it); handler names are checked only when
    ``handlers`` is given. A file that cannot be read or parsed raises `DefinitionError`."""
    text, where = read(source)
    doc = load_yaml(text, where)
    problems = _schema_problems(doc) + _step_problems(doc, handlers)
    return doc, [f"{where}: {p}" for p in problems]


def parse(source: str | Path, *, handlers: Handlers) -> DagSpec:
    """Read, check and resolve a DAG; raises `DefinitionError` with every problem found."""
    doc, problems = check(source, handlers=handlers)
    if problems:
        raise DefinitionError(problems)
    steps = []
    for step in doc["steps"]:
        retry = step.get("retry", {})
        found = {
            key: _lookup(handlers, step[key]) for key in ("compensate", "fallback") if key in step
        }
        steps.append(
            StepSpec(
                id=step["id"],
                handler=_lookup(handlers, step["handler"]),  # type: ignore[arg-type]
                depends_on=tuple(step.get("depends_on", ())),
                max_attempts=retry.get("max_attempts", 3 if retry else 1),
                backoff=retry.get("backoff", "exponential"),
                initial_interval=timedelta(seconds=seconds(retry.get("initial_interval", 1))),
                max_interval=timedelta(seconds=seconds(retry.get("max_interval", 300))),
                compensate=found.get("compensate"),
                fallback=found.get("fallback"),
                timeout=seconds(step["timeout"]) if "timeout" in step else None,
            )
        )
    return DagSpec(name=doc.get("name", "Dag"), steps=tuple(steps))

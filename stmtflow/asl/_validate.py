"""Checking a state machine before it runs: every problem found, reported at once.

`problems` walks the definition (the top level, every Parallel branch, every Map processor)
and returns one readable line per problem, each naming where it is (``States.Pay.Next``):
unknown state types, a missing or unknown ``StartAt``/``Next``/``Default`` target, a state with
neither ``Next`` nor ``End``, states no path reaches, malformed Paths and Reference Paths, a
payload template's ``key.$`` that is neither a Path nor an intrinsic function, malformed choice
rules, Wait, Retry and Catch fields, and what is not supported (JSONata, variables, a
distributed Map's reader and writer). `validate` raises them as one `DefinitionError`.

Example:
    >>> for line in problems({"StartAt": "A", "States": {"A": {"Type": "Pass"},
    ...                                                   "B": {"Type": "Nope"}}}):
    ...     print(line)
    States.A: needs "Next" or "End": true
    States.B: unknown state type 'Nope'
    States.B: unreachable from StartAt
"""

from __future__ import annotations

from typing import Any

from stmtflow.asl._choice import COMPARISONS, TESTS, parse_timestamp
from stmtflow.asl._intrinsics import intrinsic_problem
from stmtflow.asl._paths import path_problem, reference_problem
from stmtflow.errors import DefinitionError

__all__ = ["problems", "validate"]

TYPES = ("Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")
_TERMINAL = ("Choice", "Succeed", "Fail")
_ERROR_HANDLING = ("Task", "Parallel", "Map")
_UNSUPPORTED = ("Assign", "Arguments", "Output", "Items", "ItemReader", "ResultWriter")


def _query_language(spec: dict[str, Any], at: str, out: list[str]) -> None:
    language = spec.get("QueryLanguage", "JSONPath")
    if language != "JSONPath":
        out.append(f"{at}: only JSONPath is supported, not {language!r}")


def validate(definition: Any) -> None:
    """Raise `DefinitionError` listing every problem of ``definition``, if it has any."""
    found = problems(definition)
    if found:
        raise DefinitionError(found)


def problems(definition: Any) -> list[str]:
    """Every problem of the state machine ``definition`` (a dict), one line each."""
    out: list[str] = []
    _machine(definition, "", out)
    return out


def _machine(machine: Any, where: str, out: list[str]) -> None:
    here = where or "the state machine"
    if not isinstance(machine, dict):
        out.append(f"{here}: must be an object with StartAt and States")
        return
    _query_language(machine, f"{where}QueryLanguage", out)
    states = machine.get("States")
    if not isinstance(states, dict) or not states:
        out.append(f"{where}States: must be a non-empty object of states")
        states = {}
    start = machine.get("StartAt")
    if not isinstance(start, str):
        out.append(f"{where}StartAt: must be a state name")
    elif states and start not in states:
        out.append(f"{where}StartAt: no state is named {start!r}")
    for name, spec in states.items():
        _state(name, spec, f"{where}States.{name}", states, out)
    if isinstance(start, str) and start in states:
        seen = _reachable(start, states)
        out += [f"{where}States.{n}: unreachable from StartAt" for n in states if n not in seen]


def _targets(spec: Any) -> list[Any]:
    if not isinstance(spec, dict):
        return []
    found = [spec.get("Next"), spec.get("Default")]
    for rule in spec.get("Choices", []) if isinstance(spec.get("Choices"), list) else []:
        found.append(rule.get("Next") if isinstance(rule, dict) else None)
    for catcher in spec.get("Catch", []) if isinstance(spec.get("Catch"), list) else []:
        found.append(catcher.get("Next") if isinstance(catcher, dict) else None)
    return [t for t in found if isinstance(t, str)]


def _reachable(start: str, states: dict[str, Any]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for target in _targets(states[todo.pop()]):
            if target in states and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _target(value: Any, at: str, states: dict[str, Any], out: list[str]) -> None:
    if not isinstance(value, str):
        out.append(f"{at}: must be a state name")
    elif value not in states:
        out.append(f"{at}: no state is named {value!r}")


def _state(name: str, spec: Any, at: str, states: dict[str, Any], out: list[str]) -> None:
    if not isinstance(spec, dict):
        out.append(f"{at}: must be an object")
        return
    kind = spec.get("Type")
    if kind not in TYPES:
        out.append(f"{at}: unknown state type {kind!r}")
        return
    if len(name) > 80:
        out.append(f"{at}: a state name has at most 80 characters")
    _query_language(spec, f"{at}.QueryLanguage", out)
    for field in _UNSUPPORTED:
        if field in spec:
            out.append(f"{at}.{field}: not supported (JSONata and variables are not)")
    if kind not in _TERMINAL:
        has_next, ends = "Next" in spec, spec.get("End") is True
        if has_next and ends:
            out.append(f'{at}: has both "Next" and "End"')
        elif not has_next and not ends:
            out.append(f'{at}: needs "Next" or "End": true')
        if has_next:
            _target(spec["Next"], f"{at}.Next", states, out)
    for field in ("InputPath", "OutputPath"):
        if spec.get(field) is not None:
            _path(spec[field], f"{at}.{field}", out)
    if spec.get("ResultPath") is not None:
        _reference(spec["ResultPath"], f"{at}.ResultPath", out)
    for field in ("Parameters", "ResultSelector", "ItemSelector"):
        if field in spec:
            _template(spec[field], f"{at}.{field}", out)
    if kind == "Choice":
        for n, rule in enumerate(spec.get("Choices") or []):
            if isinstance(rule, dict) and "Next" in rule:
                _target(rule["Next"], f"{at}.Choices[{n}].Next", states, out)
        if "Default" in spec:
            _target(spec["Default"], f"{at}.Default", states, out)
    if kind in _ERROR_HANDLING:
        _retry(spec.get("Retry", []), f"{at}.Retry", out)
        _catch(spec.get("Catch", []), f"{at}.Catch", states, out)
    CHECKS[kind](spec, at, out)


def _path(value: Any, at: str, out: list[str]) -> None:
    problem = path_problem(value) if isinstance(value, str) else "must be a string"
    if problem:
        out.append(f"{at}: {problem}")


def _reference(value: Any, at: str, out: list[str]) -> None:
    problem = reference_problem(value) if isinstance(value, str) else "must be a string"
    if problem:
        out.append(f"{at}: {problem}")


def _template(value: Any, at: str, out: list[str]) -> None:
    if isinstance(value, list):
        for n, item in enumerate(value):
            _template(item, f"{at}[{n}]", out)
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if not key.endswith(".$"):
            _template(item, f"{at}.{key}", out)
        elif not isinstance(item, str):
            out.append(f"{at}.{key}: must be a Path or an intrinsic function (a string)")
        elif item.startswith("States."):
            problem = intrinsic_problem(item)
            if problem:
                out.append(f"{at}.{key}: {problem}")
        else:
            _path(item, f"{at}.{key}", out)


def _count(value: Any, at: str, out: list[str], *, least: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        out.append(f"{at}: must be an integer of at least {least}, got {value!r}")


def _error_names(names: Any, at: str, last: bool, out: list[str]) -> None:
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        out.append(f"{at}: must be a non-empty list of error names")
        return
    if "States.ALL" in names and (len(names) > 1 or not last):
        out.append(f"{at}: States.ALL must be alone, in the last retrier or catcher")


def _retry(retriers: Any, at: str, out: list[str]) -> None:
    if not isinstance(retriers, list):
        out.append(f"{at}: must be a list of retriers")
        return
    for n, r in enumerate(retriers):
        here = f"{at}[{n}]"
        if not isinstance(r, dict):
            out.append(f"{here}: must be an object")
            continue
        _error_names(r.get("ErrorEquals"), f"{here}.ErrorEquals", n == len(retriers) - 1, out)
        if "IntervalSeconds" in r:
            _count(r["IntervalSeconds"], f"{here}.IntervalSeconds", out, least=1)
        if "MaxAttempts" in r:
            _count(r["MaxAttempts"], f"{here}.MaxAttempts", out)
        if "MaxDelaySeconds" in r:
            _count(r["MaxDelaySeconds"], f"{here}.MaxDelaySeconds", out, least=1)
        rate = r.get("BackoffRate", 2.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 1:
            out.append(f"{here}.BackoffRate: must be a number of at least 1.0, got {rate!r}")


def _catch(catchers: Any, at: str, states: dict[str, Any], out: list[str]) -> None:
    if not isinstance(catchers, list):
        out.append(f"{at}: must be a list of catchers")
        return
    for n, c in enumerate(catchers):
        here = f"{at}[{n}]"
        if not isinstance(c, dict):
            out.append(f"{here}: must be an object")
            continue
        _error_names(c.get("ErrorEquals"), f"{here}.ErrorEquals", n == len(catchers) - 1, out)
        _target(c.get("Next"), f"{here}.Next", states, out)
        if c.get("ResultPath") is not None:
            _reference(c["ResultPath"], f"{here}.ResultPath", out)


def _task(spec: dict[str, Any], at: str, out: list[str]) -> None:
    if not isinstance(spec.get("Resource"), str):
        out.append(f"{at}.Resource: must be a string naming the resource")
    if "TimeoutSeconds" in spec:
        _count(spec["TimeoutSeconds"], f"{at}.TimeoutSeconds", out, least=1)
    if "TimeoutSecondsPath" in spec:
        _reference(spec["TimeoutSecondsPath"], f"{at}.TimeoutSecondsPath", out)


def _nothing(spec: dict[str, Any], at: str, out: list[str]) -> None:
    return None


def _fail(spec: dict[str, Any], at: str, out: list[str]) -> None:
    for field in ("Error", "Cause"):
        if field in spec and field + "Path" in spec:
            out.append(f"{at}: has both {field} and {field}Path")
        if field in spec and not isinstance(spec[field], str):
            out.append(f"{at}.{field}: must be a string")
        value = spec.get(field + "Path")
        if value is None:
            continue
        if isinstance(value, str) and value.startswith("States."):
            problem = intrinsic_problem(value)
            if problem:
                out.append(f"{at}.{field}Path: {problem}")
        else:
            _reference(value, f"{at}.{field}Path", out)


def _wait(spec: dict[str, Any], at: str, out: list[str]) -> None:
    given = [f for f in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if f in spec]
    if len(given) != 1:
        out.append(f"{at}: needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath")
    if "Seconds" in spec:
        _count(spec["Seconds"], f"{at}.Seconds", out)
    if "Timestamp" in spec and parse_timestamp(spec["Timestamp"]) is None:
        out.append(f"{at}.Timestamp: {spec['Timestamp']!r} is not an RFC 3339 timestamp")
    for field in ("SecondsPath", "TimestampPath"):
        if field in spec:
            _reference(spec[field], f"{at}.{field}", out)


def _choice(spec: dict[str, Any], at: str, out: list[str]) -> None:
    rules = spec.get("Choices")
    if not isinstance(rules, list) or not rules:
        out.append(f"{at}.Choices: must be a non-empty list of rules")
        rules = []
    for n, rule in enumerate(rules):
        if isinstance(rule, dict) and "Next" not in rule:
            out.append(f"{at}.Choices[{n}]: needs a Next")
        _rule(rule, f"{at}.Choices[{n}]", out)


_OPERATORS = {*COMPARISONS, *(name + "Path" for name in COMPARISONS if name != "StringMatches")}


def _rule(rule: Any, at: str, out: list[str]) -> None:
    if not isinstance(rule, dict):
        out.append(f"{at}: must be an object")
        return
    if "And" in rule or "Or" in rule:
        key = "And" if "And" in rule else "Or"
        if not isinstance(rule[key], list) or not rule[key]:
            out.append(f"{at}.{key}: must be a non-empty list of rules")
            return
        for n, sub in enumerate(rule[key]):
            _rule(sub, f"{at}.{key}[{n}]", out)
        return
    if "Not" in rule:
        _rule(rule["Not"], f"{at}.Not", out)
        return
    if "Variable" not in rule:
        out.append(f"{at}: needs a Variable (or And, Or, Not)")
    else:
        _path(rule["Variable"], f"{at}.Variable", out)
    ops = [k for k in rule if k in _OPERATORS or k in TESTS or k == "IsPresent"]
    if len(ops) != 1:
        out.append(f"{at}: needs exactly one comparison operator, found {ops or 'none'}")
        return
    op, value = ops[0], rule[ops[0]]
    if op.endswith("Path"):
        _path(value, f"{at}.{op}", out)
    elif op in TESTS or op in ("IsPresent", "BooleanEquals"):
        if not isinstance(value, bool):
            out.append(f"{at}.{op}: must be true or false")
    elif op.startswith("String") and not isinstance(value, str):
        out.append(f"{at}.{op}: must be a string")
    elif op.startswith("Numeric") and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        out.append(f"{at}.{op}: must be a number")
    elif op.startswith("Timestamp") and parse_timestamp(value) is None:
        out.append(f"{at}.{op}: {value!r} is not an RFC 3339 timestamp")


def _parallel(spec: dict[str, Any], at: str, out: list[str]) -> None:
    branches = spec.get("Branches")
    if not isinstance(branches, list) or not branches:
        out.append(f"{at}.Branches: must be a non-empty list of state machines")
        return
    for n, branch in enumerate(branches):
        _machine(branch, f"{at}.Branches[{n}].", out)


def _map(spec: dict[str, Any], at: str, out: list[str]) -> None:
    key = "ItemProcessor" if "ItemProcessor" in spec else "Iterator"
    if key not in spec:
        out.append(f"{at}: needs an ItemProcessor (or the older Iterator)")
    else:
        _machine(spec[key], f"{at}.{key}.", out)
    if "ItemsPath" in spec:
        _reference(spec["ItemsPath"], f"{at}.ItemsPath", out)
    if "MaxConcurrency" in spec:
        _count(spec["MaxConcurrency"], f"{at}.MaxConcurrency", out)
    if "ToleratedFailureCount" in spec:
        _count(spec["ToleratedFailureCount"], f"{at}.ToleratedFailureCount", out)
    pct = spec.get("ToleratedFailurePercentage", 0)
    if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct <= 100:
        out.append(f"{at}.ToleratedFailurePercentage: must be a number from 0 to 100")
    if "ItemSelector" in spec and "Parameters" in spec:
        out.append(f"{at}: has both ItemSelector and Parameters")


CHECKS = {
    "Task": _task,
    "Pass": _nothing,
    "Succeed": _nothing,
    "Fail": _fail,
    "Wait": _wait,
    "Choice": _choice,
    "Parallel": _parallel,
    "Map": _map,
}

"""The data flow of one state: InputPath, Parameters, ResultSelector, ResultPath, OutputPath.

The specification's order, which every state follows with the fields it has:

1. ``InputPath`` picks the effective input from the raw input (``null``: ``{}``);
2. ``Parameters`` (a payload template) builds the task's input from the effective input;
3. the state produces its result; ``ResultSelector`` (a template) reshapes it;
4. ``ResultPath`` puts the result into the *raw* input (``null``: discard the result,
   ``$``: the result is the output), creating the objects a nested path needs;
5. ``OutputPath`` picks the output (``null``: ``{}``).

A payload template copies its fields, except that a field named ``key.$`` becomes ``key``
with a value computed from its string: a Path over the effective input, ``$$...`` over the
context object, or an intrinsic function. Objects nested in the template (also inside
arrays) are templates too.

Example:
    >>> template({"id.$": "$.n", "fixed": 1, "deep": [{"m.$": "$$.State.Name"}]},
    ...          {"n": 7}, {"State": {"Name": "S"}})
    {'id': 7, 'fixed': 1, 'deep': [{'m': 'S'}]}
    >>> put({"a": 1}, "$.b.c", True)
    {'a': 1, 'b': {'c': True}}
"""

from __future__ import annotations

import copy
from typing import Any

from stmtflow.asl._failure import AslFailure
from stmtflow.asl._intrinsics import evaluate
from stmtflow.asl._paths import query, reference_steps

__all__ = ["input_of", "output_of", "put", "result_output", "template"]

_ABSENT = object()


def input_of(spec: dict[str, Any], raw: Any, context: Any) -> Any:
    """The effective input: ``InputPath`` applied to the raw input."""
    path = spec.get("InputPath", "$")
    return {} if path is None else query(path, raw, context)


def output_of(spec: dict[str, Any], value: Any, context: Any) -> Any:
    """The state's output: ``OutputPath`` applied to the value after ResultPath."""
    path = spec.get("OutputPath", "$")
    return {} if path is None else query(path, value, context)


def template(tmpl: Any, data: Any, context: Any) -> Any:
    """The value a payload template (Parameters, ResultSelector, ItemSelector) gives."""
    if isinstance(tmpl, dict):
        out: dict[str, Any] = {}
        for key, value in tmpl.items():
            if key.endswith(".$") and isinstance(value, str):
                out[key[:-2]] = _dynamic(key, value, data, context)
            else:
                out[key] = template(value, data, context)
        return out
    if isinstance(tmpl, list):
        return [template(item, data, context) for item in tmpl]
    return copy.deepcopy(tmpl)


def _dynamic(key: str, text: str, data: Any, context: Any) -> Any:
    if text.startswith("States."):
        return evaluate(text, data, context)
    try:
        return copy.deepcopy(query(text, data, context))
    except AslFailure as exc:
        raise AslFailure(
            "States.Runtime",
            f"The JSONPath {text!r} specified for the field {key!r} could not be found",
        ) from exc


def put(raw: Any, result_path: str | None, result: Any) -> Any:
    """``ResultPath``: the raw input with ``result`` placed at ``result_path``.

    A step through something that is not an object (or, for an index, an array long enough)
    fails with ``States.ResultPathMatchFailure``; missing objects on the way are created.
    """
    if result_path is None:
        return raw
    steps = reference_steps(result_path)
    if not steps:
        return result
    root = copy.deepcopy(raw)
    node = root
    for n, step in enumerate(steps):
        last = n == len(steps) - 1
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                raise _mismatch(result_path, raw)
            if last:
                node[step] = result
            else:
                node = node[step]
            continue
        if not isinstance(node, dict):
            raise _mismatch(result_path, raw)
        if last:
            node[step] = result
        else:
            if step not in node:
                node[step] = {}
            node = node[step]
    return root


def _mismatch(path: str, raw: Any) -> AslFailure:
    return AslFailure(
        "States.ResultPathMatchFailure",
        f"Unable to apply ResultPath {path!r} to the state's input",
    )


def result_output(spec: dict[str, Any], raw: Any, result: Any, context: Any) -> Any:
    """A Task's, Parallel's or Map's output: ResultSelector, ResultPath, then OutputPath."""
    if "ResultSelector" in spec:
        result = template(spec["ResultSelector"], result, context)
    return output_of(spec, put(raw, spec.get("ResultPath", "$"), result), context)

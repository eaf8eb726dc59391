"""A state's JSON in pieces, one per thread: `StateParts`, `StateText`, `state_parts`.

Part of the execution state (`stmtflow.state`, which re-exports every name here): the pieces a
store that keeps threads apart stores, taken from the text `stmtflow.state.dump_state` joined or
cut from any other state text by walking its JSON.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import NamedTuple

__all__ = ["StateParts", "StateText", "state_parts"]


class StateParts(NamedTuple):
    """A state's JSON in pieces, one per thread: ``head + "".join(threads) + tail`` is the text.

    ``head`` runs up to the first thread (the opening bracket of ``threads`` included), each of
    ``threads`` is one thread's JSON object, every one but the first with the separator before it
    (a comma), and ``tail`` is the rest. A store that keeps threads apart stores these pieces as
    they are, so putting them back together needs no knowledge of the format.

    Example:
        >>> state_parts('{"id":"a","threads":[{"id":"m"},{"id":"t"}],"pc":3}').threads
        ['{"id":"m"}', ',{"id":"t"}']
    """

    head: str
    threads: list[str]
    tail: str


class StateText(str):
    """A state's JSON as `dump_state` joined it, keeping the pieces it joined (``parts``).

    To anything but a store it is the text. A store that keeps threads apart takes ``parts``
    from here (through `state_parts`) instead of parsing the text again, and a thread unchanged
    since the last dump is the very string object it was then, so comparing it costs nothing.
    """

    parts: StateParts


def state_parts(text: str) -> StateParts | None:
    """The `StateParts` of a state's JSON text, or None when it has no threads to part.

    A `StateText` brings its own; any other text is parsed as JSON (whatever its spacing or key
    order) and cut where the elements of its top-level ``threads`` list begin and end. None
    also for text that is not a JSON object with a non-empty ``threads`` list: a store keeps
    such text whole.
    """
    if isinstance(text, StateText):
        return text.parts if text.parts.threads else None
    try:
        return _parsed_parts(text)
    except ValueError:  # not JSON (json.JSONDecodeError is a ValueError)
        return None


_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in _SPACE:
        at += 1
    return at


def _expect(text: str, at: int, char: str) -> int:
    """The position after ``char`` (and the space after it) at ``at``; ValueError if absent."""
    if not text.startswith(char, at):
        raise ValueError(f"expected {char!r} at {at}")
    return _skip_space(text, at + 1)


def _parsed_parts(text: str) -> StateParts | None:
    """`state_parts` of a plain text: walk the top-level object value by value with the JSON
    decoder, and the elements of ``threads`` one by one, noting where each ends."""
    at = _expect(text, _skip_space(text, 0), "{")
    while not text.startswith("}", at):
        key, at = _DECODER.raw_decode(text, at)
        at = _expect(text, _skip_space(text, at), ":")
        if key == "threads" and text.startswith("[", at):
            return _list_parts(text, at)
        _, at = _DECODER.raw_decode(text, at)
        at = _skip_space(text, at)
        if not text.startswith("}", at):
            at = _expect(text, at, ",")
    return None


def _list_parts(text: str, at: int) -> StateParts | None:
    """The parts of ``text`` around the elements of the JSON list that starts at ``at``."""
    start = _expect(text, at, "[")
    ends: list[int] = []
    at = start
    while not text.startswith("]", at):
        if ends:
            at = _expect(text, at, ",")
        _, at = _DECODER.raw_decode(text, at)
        ends.append(at)
        at = _skip_space(text, at)
    if not ends:
        return None
    cuts = [start, *ends]
    threads = [text[a:b] for a, b in pairwise(cuts)]
    return StateParts(text[:start], threads, text[ends[-1] :])

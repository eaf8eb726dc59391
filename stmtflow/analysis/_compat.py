"""Deploy compatibility: will a new definition strand the instances that are running now?

Stored state points at statement names: each thread at the name of its current statement, each
thread started by a ``Go`` at that ``Go``'s name, each armed event at its event name. A new
version of a definition may run every stored instance only if all those names still resolve, to
the same kind of statement, inside the same thread body. Two checks, each returning plain data
(and `format_report` / `DefinitionDiff.report` for humans), so a command line is a thin wrapper:

- `check_compatibility` checks stored states against a definition (what `resume` would refuse
  with ``DefinitionMismatch``; the checks are the interpreter's own, ``Program.mismatches``).
- `compare_definitions` compares two ``definition_json`` trees: names removed, added, changed in
  kind or moved to another thread, with likely renames.

Example:
    >>> import stmtflow as sf
    >>> state = sf.new_state("order-1", "Order")
    >>> state.threads[0].cur_step = "charge"
    >>> state.threads[0].status = sf.ThreadStatus.EXECUTING
    >>> [i.describe() for i in check_compatibility(sf.S(sf.Step("pay", print)), [state])]
    ["order-1: thread '_main_': its position 'charge' no longer exists"]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from stmtflow.analysis._validate import validate
from stmtflow.core._bodies import Bodies
from stmtflow.core._program import Program
from stmtflow.dsl._statements import Section, Step
from stmtflow.dsl._workflow import WorkflowState
from stmtflow.errors import DefinitionError, ExecutionError
from stmtflow.state import MAIN_THREAD, Compensation, SagaEntry, State, Thread, WaitEvent

__all__ = [
    "DefinitionDiff",
    "Incompatibility",
    "KindChange",
    "Moved",
    "Rename",
    "check_compatibility",
    "compare_definitions",
    "format_report",
]

Missing: TypeAlias = Literal["thread", "position", "event", "compensation"]
StateSource: TypeAlias = State | tuple[str, State]
"""A state to check, alone or with a label saying where it came from (a file, a store URL)."""

_CACHE_KEY = ("stmtflow.analysis._compat",)


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One name a stored instance stands on that the definition no longer resolves.

    Attributes:
        instance: the instance id (``State.id``).
        workflow: the workflow type name (``State.workflow``).
        thread: the thread's id; None for an ended wait's event awaiting teardown.
        kind: what no longer resolves: ``"thread"`` (the ``Go`` that started the thread),
            ``"position"`` (the statement it stands at: gone, of another kind, or moved out of
            the thread's body), ``"event"`` (an armed, fired or awaiting-teardown event) or
            ``"compensation"`` (a completed step still to be compensated whose step no longer
            exists or has no ``compensate=``: its compensation would be recorded as failed).
        name: the name that no longer resolves.
        problem: the interpreter's own description of the problem.
        source: the label given with the state (e.g. its file), if any.

    Example:
        >>> Incompatibility("o-1", "Order", "_main_", "event", "paid", "event 'paid' is gone").kind
        'event'
    """

    instance: str
    workflow: str
    thread: str | None
    kind: Missing
    name: str
    problem: str
    source: str | None = None

    def describe(self) -> str:
        """One line naming the instance (and its source), then the problem."""
        where = f"{self.instance} ({self.source})" if self.source else self.instance
        return f"{where}: {self.problem}"


def _program(definition: Section | WorkflowState) -> Program:
    root = definition.definition() if isinstance(definition, WorkflowState) else definition
    validate(root)
    return Program(root, _CACHE_KEY, "the new definition")


def _mismatches(program: Program, state: State) -> list[str]:
    """`Program.mismatches`, a thread whose body is built from its arg checked in that body."""
    bodies = Bodies(program, _CACHE_KEY)
    return program.mismatches(state, lambda thread: bodies.place(thread)[:2])


def _sources(states: Iterable[StateSource]) -> Iterator[tuple[str | None, State]]:
    for item in states:
        if isinstance(item, State):
            yield None, item
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], State):
            yield str(item[0]), item[1]
        else:
            raise TypeError(f"expected a State or a (label, State) pair, got {item!r}")


def check_compatibility(
    definition: Section | WorkflowState, states: Iterable[StateSource]
) -> list[Incompatibility]:
    """Every thread, position or event of ``states`` that ``definition`` no longer has.

    An empty list means every given instance can run on the definition: safe to deploy.

    Args:
        definition: the new definition (a ``Section``), or a workflow instance whose
            ``definition()`` builds it (from that instance's data).
        states: the stored states of this workflow type, each a `State` or a
            ``(label, State)`` pair; the label (a file name, say) is kept on each finding.

    Raises:
        DefinitionError: the definition itself is invalid.

    Example:
        >>> import stmtflow as sf
        >>> check_compatibility(sf.S(sf.Step("pay", print)), [sf.new_state("o-1", "Order")])
        []
    """
    program = _program(definition)
    found: list[Incompatibility] = []
    for source, state in _sources(states):
        found.extend(_compensation_findings(program, state, source))
        if not _mismatches(program, state):
            continue
        for thread in state.threads:
            found.extend(_thread_findings(program, state, thread, source))
        for event in state.teardowns:
            probe = state.model_copy(update={"threads": [], "teardowns": [event]})
            for problem in _mismatches(program, probe):
                found.append(_finding(state, None, "event", event.req.name, problem, source))
    return found


def _compensation_findings(
    program: Program, state: State, source: str | None
) -> Iterator[Incompatibility]:
    """The completed steps of ``state`` still to be compensated that the definition cannot."""
    due: list[SagaEntry | Compensation] = [*state.saga, *state.unwinding]
    bodies = Bodies(program, _CACHE_KEY)
    for entry in due:
        step, thread = entry.step, entry.thread
        try:  # a step of a body built from an arg is looked for in that body
            body = bodies.built_for(entry.body_of, thread) if entry.body_of else program
            found = body.find(step)
        except (DefinitionError, ExecutionError) as exc:
            found, why = None, f": its body cannot be built ({exc})"
        else:
            why = ""
        node = None if found is None else found[1]
        if not (isinstance(node, Step) and node.compensate is not None):
            problem = (
                f"step {step!r} completed on thread {thread!r} and is to be "
                f"compensated, but the definition has no compensation for it{why}"
            )
            yield _finding(state, thread, "compensation", step, problem, source)


def _thread_findings(
    program: Program, state: State, thread: Thread, source: str | None
) -> list[Incompatibility]:
    """Ask `Program.mismatches` one question at a time, to tell what exactly is missing."""

    def ask(**changes: Any) -> list[str]:
        probe = thread.model_copy(update=changes)
        return _mismatches(program, state.model_copy(update={"threads": [probe], "teardowns": []}))

    def finding(kind: Missing, name: str, problem: str) -> Incompatibility:
        return _finding(state, thread.id, kind, name, problem, source)

    if thread.name != MAIN_THREAD:
        problems = ask(cur_step="", wait_events=[], cur_callback=None)
        if problems:
            return [finding("thread", thread.name, p) for p in problems]
    problems = ask(wait_events=[], cur_callback=None)
    if problems:
        return [finding("position", thread.cur_step, p) for p in problems]
    result: list[Incompatibility] = []
    events: list[tuple[str, list[WaitEvent], str | None]] = [
        (event.req.name, [event], None) for event in thread.wait_events
    ]
    if thread.cur_callback is not None:
        events.append((thread.cur_callback, [], thread.cur_callback))
    for name, armed, fired in events:
        result.extend(finding("event", name, p) for p in ask(wait_events=armed, cur_callback=fired))
    return result


def _finding(
    state: State, thread: str | None, kind: Missing, name: str, problem: str, source: str | None
) -> Incompatibility:
    return Incompatibility(state.id, state.workflow, thread, kind, name, problem, source)


def format_report(findings: list[Incompatibility], *, checked: int | None = None) -> str:
    """A human report of `check_compatibility`'s findings, grouped by instance.

    ``checked`` (how many instances were checked) adds a count to the summary line.

    Example:
        >>> print(format_report([], checked=3))
        OK: all 3 instances fit the definition
    """
    if not findings:
        scope = f"all {checked} instances" if checked is not None else "every instance"
        return f"OK: {scope} fit the definition"
    by_instance: dict[tuple[str, str | None], list[Incompatibility]] = {}
    for item in findings:
        by_instance.setdefault((item.instance, item.source), []).append(item)
    total = f" of {checked}" if checked is not None else ""
    lines = [
        f"INCOMPATIBLE: {len(by_instance)}{total} instance(s) would break "
        f"({len(findings)} problem(s))"
    ]
    for (instance, source), items in by_instance.items():
        label = f"{instance} ({source})" if source else instance
        lines.append(f"  {label} [{items[0].workflow}]")
        lines.extend(f"    - {item.problem}" for item in items)
    return "\n".join(lines)


# -- comparing two definitions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KindChange:
    """A name that now names another kind of statement (or an event with another handler)."""

    name: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Moved:
    """A name that now sits in another thread body (``_main_`` or a ``Go``'s name)."""

    name: str
    old_thread: str
    new_thread: str


@dataclass(frozen=True, slots=True)
class Rename:
    """A likely rename: a removed and an added name of the same kind at the same place."""

    old: str
    new: str
    kind: str


@dataclass(frozen=True, slots=True)
class DefinitionDiff:
    """What changed between two definitions, by name.

    Kinds are statement types (``Step``, ``Wait``, ``Go``, ...); events are ``On(<handler>)``,
    e.g. ``On(Timer)`` (a ``Sleep``'s timer event included).

    Attributes:
        removed: names only the old definition has, with their kinds.
        added: names only the new definition has, with their kinds.
        changed_kind: names both have, of different kinds.
        moved: names both have, in different thread bodies.
        renamed: likely renames among ``removed``/``added`` (a hint; they are listed there too).

    Example:
        >>> import stmtflow as sf
        >>> old = sf.definition_json(sf.S(sf.Step("charge", print)))
        >>> new = sf.definition_json(sf.S(sf.Step("pay", print)))
        >>> diff = compare_definitions(old, new)
        >>> diff.removed, diff.added, diff.renamed
        ({'charge': 'Step'}, {'pay': 'Step'}, [Rename(old='charge', new='pay', kind='Step')])
    """

    removed: dict[str, str] = field(default_factory=dict)
    added: dict[str, str] = field(default_factory=dict)
    changed_kind: list[KindChange] = field(default_factory=list)
    moved: list[Moved] = field(default_factory=list)
    renamed: list[Rename] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        """True when an instance standing on an old name could be stranded."""
        return bool(self.removed or self.changed_kind or self.moved)

    def report(self) -> str:
        """The differences as readable lines ("no differences in names" when none)."""
        lines = [f"removed {kind} {name!r}" for name, kind in self.removed.items()]
        lines += [f"added {kind} {name!r}" for name, kind in self.added.items()]
        lines += [f"{c.name!r} changed kind: {c.old} -> {c.new}" for c in self.changed_kind]
        lines += [
            f"{m.name!r} moved from thread {m.old_thread!r} to {m.new_thread!r}" for m in self.moved
        ]
        lines += [f"{r.old!r} looks renamed to {r.new!r} ({r.kind})" for r in self.renamed]
        return "\n".join(lines) if lines else "no differences in names"


@dataclass(frozen=True, slots=True)
class _Named:
    kind: str
    thread: str
    place: tuple[str | int, ...]


_DERIVED_EVENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "Sleep": (("event", "On(Timer)"),),
    "Ask": (("event", "On(HumanInput)"), ("timeout_event", "On(Timer)")),
}
"""The events a statement's JSON names by a key of its own (not an ``On`` child)."""


def _names(tree: Any) -> dict[str, _Named]:
    """Every name in a ``definition_json`` tree: its kind, thread body and place in the tree."""
    found: dict[str, _Named] = {}

    def visit(node: Any, thread: str, place: tuple[str | int, ...]) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                visit(item, thread, (*place, i))
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind == "On" and isinstance(node.get("event"), str):
            found[node["event"]] = _Named(f"On({node.get('handler')})", thread, place)
        elif isinstance(kind, str) and isinstance(node.get("name"), str):
            found[node["name"]] = _Named(kind, thread, place)
            for key, event in _DERIVED_EVENTS.get(kind, ()):
                if isinstance(node.get(key), str):
                    found[node[key]] = _Named(event, thread, (*place, key))
        inner = node["name"] if kind == "Go" and isinstance(node.get("name"), str) else thread
        for key, value in node.items():
            if isinstance(value, list | dict):
                visit(value, inner, (*place, key))

    visit(tree, MAIN_THREAD, ())
    return found


def compare_definitions(old_json: dict[str, Any], new_json: dict[str, Any]) -> DefinitionDiff:
    """Compare two ``definition_json`` trees by name.

    A removed name strands instances standing on it; so does a name that changed kind or moved
    to another thread body. Added names are always safe. A removed and an added name of the same
    kind at the same place in the tree are reported as a likely rename too.
    """
    old, new = _names(old_json), _names(new_json)
    removed = {name: old[name].kind for name in old if name not in new}
    added = {name: new[name].kind for name in new if name not in old}
    both = [name for name in old if name in new]
    changed = [
        KindChange(name, old[name].kind, new[name].kind)
        for name in both
        if old[name].kind != new[name].kind
    ]
    moved = [
        Moved(name, old[name].thread, new[name].thread)
        for name in both
        if old[name].thread != new[name].thread
    ]
    places = {(new[name].place, new[name].kind): name for name in added}
    renamed = [
        Rename(name, places[key], old[name].kind)
        for name in removed
        if (key := (old[name].place, old[name].kind)) in places
    ]
    return DefinitionDiff(removed, added, changed, moved, renamed)

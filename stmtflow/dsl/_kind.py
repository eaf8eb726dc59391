"""What every statement kind says about itself, and the registry the rest of the library asks.

Each statement kind is written in one module of this package: its frozen class (the DSL) and a
`Kind` beside it with the kind's rules — the statements inside it, the name it can be found by,
which thread statuses may stand on it, what a definition check says about it, how a thread
moves through it, and how it is drawn and written as JSON. The layers above ask the registry,
never a list of classes of their own:

- `stmtflow.analysis` (walk, validate) asks `children`, `names`, `problems`, `child_path`;
- `stmtflow.core` (the program a thread moves through) asks `enter`, `after`, `resume`,
  `rests`, `starts_thread`;
- `stmtflow.render` asks `json` and `draw`.

So adding a statement kind is one new module (its class and its `Kind`) and one registration
(`register` in that module, and the class in the `Statement` union). Statements stay plain
frozen values: the rules live in the `Kind`, never in the statement.

The moves and the drawing are written against two small interfaces, `Cursor` and `Drawing`,
which the program and the flowchart builder implement, so this package imports neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, NamedTuple, Protocol, TypeVar

from stmtflow.state import ThreadStatus

if TYPE_CHECKING:
    from stmtflow.state import Thread

__all__ = [
    "ENDED",
    "RETURNED",
    "Cursor",
    "Drawing",
    "Ended",
    "Exit",
    "Kind",
    "Loop",
    "Site",
    "cond_value",
    "duration_text",
    "kind_of",
    "kinds",
    "register",
    "rules",
    "seconds",
    "truth",
    "with_word",
]

S = TypeVar("S")

Shape = Literal[
    "start", "end", "step", "decision", "wait", "waitfor", "go", "join", "call", "invalid"
]


def cond_value(cond: object) -> bool | str:
    """A condition as shown in JSON and diagrams: ``"lazy"`` for a callable, else its truth."""
    return "lazy" if callable(cond) else bool(cond)


def truth(cond: Any) -> bool:
    """Evaluate a condition: a bool as is, a callable (lazy) by calling it."""
    return bool(cond()) if callable(cond) else bool(cond)


# -- the interfaces the rules are written against ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Ended:
    """Where a move leaves a thread that reached the end of its body or a ``Return``."""

    returned: bool


ENDED = Ended(returned=False)
RETURNED = Ended(returned=True)


class Cursor(Protocol):
    """A thread's walk through the tree during one move (implemented by the program).

    The cursor stands on a statement. A kind's `Kind.enter`, `Kind.after` or `Kind.resume`
    either returns where the thread comes to rest (the statement itself, or `RETURNED`), or
    goes `into` a child (entered next), or returns None having gone nowhere: the statement is
    done, and its parent's `Kind.after` is asked next. Conditions are evaluated with `truth`;
    what a lazy one raises is reported by the program, naming the statement (`Kind.what_runs`).
    """

    def into(self, index: int, child: Any) -> None:
        """Go to ``child``, child ``index`` of the statement the cursor stands on (as the kind's
        `Kind.children` gives it); it is entered next."""

    def first_visit(self) -> bool:
        """False when this move already stood here (a loop iteration reached no step)."""

    def unwind_to_loop(self) -> Any:
        """Climb to the innermost ``For`` of the thread's body (for ``Break``/``Continue``)."""

    thread: Thread
    """The thread that moves (read it, never change it: the interpreter applies the move)."""

    def spawn(self, go: Any, thread_id: str, *, arg: Any = None, group: str | None = None) -> None:
        """Start a thread with ``thread_id`` running the body of ``go`` once the move is done,
        with ``arg`` (JSON) as its argument, in ``group``."""

    def group_count(self, group: str) -> tuple[int, int]:
        """The threads of ``group``: how many are alive, and how many ended since its last
        ``Join`` (threads this move spawns not counted)."""

    def close_group(self, group: str, *, end_rest: bool) -> None:
        """Once the move is done: the group was joined, so forget its ended threads; with
        ``end_rest`` also end its threads still alive (their events torn down)."""

    def keep(self, progress: Any) -> None:
        """Once the move is done: store ``progress`` (a `ForEachProgress`, or None to clear)
        on the moving thread."""

    def fail(self, message: str) -> Exception:
        """A `DefinitionError` for this move, naming the workflow and thread."""


class Exit(NamedTuple):
    """A loose end of a diagram: an arrow from node ``src`` still looking for the next node."""

    src: str
    label: str = ""
    event: str | None = None


@dataclass(slots=True)
class Loop:
    """The ``For`` a drawing is inside: its head node and the arrows its ``Break``s leave."""

    head: str
    breaks: list[Exit] = field(default_factory=list)


class Drawing(Protocol):
    """The flowchart being built, as one statement's `Kind.draw` sees it (at that statement)."""

    loop: Loop | None
    """The innermost ``For`` around the statement in the same thread body, if any."""

    def box(self, entry: list[Exit], label: str, shape: Shape, name: str | None = None) -> str:
        """A node for this statement, reached by ``entry``; returns its id."""

    def child(
        self, path: tuple[int, ...], entry: list[Exit], *, loop: Loop | None = None
    ) -> list[Exit]:
        """Draw the statement at ``path`` below this one (child indices), entered by ``entry``;
        ``loop`` is set when that body is a loop's."""

    def back(self, exits: list[Exit], head: str) -> None:
        """Arrows from ``exits`` back to a loop's ``head``."""

    def lane(self, head: str, label: str, path: tuple[int, ...], go_name: str) -> None:
        """Draw the statement at ``path`` as the thread of ``Go`` ``go_name``, spawned from
        node ``head``."""

    def built_lane(self, head: str, label: str, body: str, go_name: str) -> None:
        """Draw the thread of ``go_name``, spawned from node ``head``, whose body is built at
        run time (from the thread's arg): one box labelled ``body``."""

    def invalid(self, entry: list[Exit]) -> list[Exit]:
        """This statement cannot stand where it is: drawn as an invalid node."""


@dataclass(frozen=True, slots=True)
class Site:
    """A node of a definition and where it sits, as the definition checks see it.

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
    loop: Any = None
    thread: Any = None

    def describe(self) -> str:
        """The node and its path, e.g. ``Step 'charge' at S[2]``."""
        kind = kind_of(self.node)
        if kind is None or not kind.labelled:
            return self.path
        return f"{kind.title(self.node)} at {self.path}"


# -- the rules of one kind --------------------------------------------------------------------


class Kind(Generic[S]):
    """The rules of one statement kind. Subclass it beside the statement class and `register` it.

    Every method has the answer of a plain leaf statement, so a kind overrides what it changes.

    Example:
        >>> from stmtflow.dsl import Step
        >>> kind = kind_of(Step("charge", print))
        >>> kind.label, kind.names(Step("charge", print)), sorted(s.value for s in kind.rests)
        ('Step', ['charge'], ['executing', 'resuming'])
    """

    statement: ClassVar[type]
    """The statement class these rules are for (found by exact type; a subclass of a
    registered class gets its base's rules)."""
    rests: ClassVar[frozenset[ThreadStatus]] = frozenset()
    """The thread statuses that may stand on this statement (empty: no thread rests here)."""
    blocks: ClassVar[bool] = False
    """True for the statements a thread stops at (step, wait, condition): a loop body must
    reach one."""
    loops: ClassVar[bool] = False
    """True for ``For``: the ``Break``/``Continue`` in its body (same thread) belong to it."""
    starts_thread: ClassVar[bool] = False
    """True for ``Go``: its body (child 0) runs on a thread of its own."""
    is_event: ClassVar[bool] = False
    """True for ``On``: its name is an event name, found by `Program.find_event`."""
    labelled: ClassVar[bool] = True
    """False for a plain block (``Section``), which messages name by its path alone."""
    holds: ClassVar[tuple[type, ...] | None] = None
    """The kinds of statement allowed directly inside (None: any statement)."""
    holds_message: ClassVar[str] = ""
    """The problem of a statement of another kind inside, e.g. ``"a Wait holds only On events
    (On or OnEvent)"``."""
    expected: ClassVar[str] = "a statement"
    """What a value that is no statement at all should have been, inside this kind."""
    inside: ClassVar[type | None] = None
    """The only kind of statement this one may stand in (``Case`` in a ``Switch``)."""

    @property
    def label(self) -> str:
        """The kind's name in messages, JSON and diagrams: the class name."""
        return self.statement.__name__

    def title(self, stmt: S) -> str:
        """The statement in a message: ``Step 'charge'``, or the bare kind when unnamed."""
        names = self.names(stmt)
        return f"{self.label} {names[0]!r}" if names and names[0] is not None else self.label

    # -- the tree ---------------------------------------------------------------------------------

    def children(self, stmt: S) -> tuple[Any, ...]:
        """The statements directly inside ``stmt``, in order."""
        return ()

    def body_fn(self, stmt: S) -> Callable[[Any], Any] | None:
        """For a kind that starts threads: the callable building a thread's body from its
        ``arg`` (``Go(name, fn)``, ``ForEach``), or None when the body is ``children``."""
        return None

    def groups(self, stmt: S) -> list[str]:
        """The thread groups ``stmt`` starts threads in (a ``Go``'s ``group``)."""
        return []

    def joins(self, stmt: S) -> list[str]:
        """The thread groups ``stmt`` waits on (a ``Join``'s ``group``)."""
        return []

    def ready(self, stmt: S, thread: Thread, count: Callable[[str], tuple[int, int]]) -> bool:
        """For a kind whose thread waits on other threads (``Join``, ``ForEach``): whether the
        thread standing on ``stmt`` can move on now; ``count(group)`` is `Cursor.group_count`.
        Asked, like a ``WaitFor`` condition, when no thread can move."""
        return False

    def names(self, stmt: S) -> list[str]:
        """The names ``stmt`` can be found by (a position's name, or an ``On``'s event)."""
        return []

    def reserved(self, stmt: S) -> list[str]:
        """Names ``stmt`` owns without being found by them in the tree (a step's escalation
        event): no other statement or event may take them."""
        return []

    # -- definition checks ------------------------------------------------------------------------

    def problems(self, stmt: S, site: Site) -> list[str]:
        """What is wrong with ``stmt`` itself, given where it sits (`Site`)."""
        return []

    def child_path(self, stmt: S, index: int, kid: object, path: str) -> str:
        """The path of child ``index`` in messages, ``path`` being this statement's."""
        return path

    def what_runs(self, stmt: S) -> str:
        """Names the user code a thread runs while moving through ``stmt``, for messages."""
        return self.label

    # -- moves ------------------------------------------------------------------------------------

    def enter(self, stmt: S, cursor: Cursor) -> Any:
        """The walk arrives at ``stmt``: return where the thread rests, or go `Cursor.into` a
        child; None without either leaves ``stmt`` (a leaf that does not rest is done at once)."""
        return None

    def after(self, stmt: S, index: int, cursor: Cursor) -> Any:
        """Child ``index`` of ``stmt`` is done: rest, go into another child, or (None) leave."""
        return None

    def resume(self, stmt: S, thread: Thread, cursor: Cursor) -> Any:
        """A thread standing on ``stmt`` moves on (it ran its step, its wait fired...): go into
        a child, or (None) leave ``stmt``."""
        return None

    # -- seeing -----------------------------------------------------------------------------------

    def json(self, stmt: S, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        """``stmt`` as JSON-ready data; ``dump`` turns a child statement into its own."""
        return {"type": self.label}

    def draw(self, stmt: S, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        """Draw ``stmt`` entered by ``entry``; return its loose ends."""
        head = drawing.box(entry, self.title(stmt), "step")
        return [Exit(head)]


# -- the registry ------------------------------------------------------------------------------

_KINDS: dict[type, Kind[Any]] = {}


def register(kind: Kind[Any]) -> Kind[Any]:
    """Make ``kind`` the rules of ``kind.statement``; returns it.

    Raises:
        ValueError: that class already has rules.
    """
    cls = kind.statement
    if cls in _KINDS:
        raise ValueError(f"statement kind {cls.__name__} is registered twice")
    _KINDS[cls] = kind
    return kind


def kind_of(stmt: object) -> Kind[Any] | None:
    """The rules of ``stmt``'s kind, or None when it is not a statement.

    A subclass of a statement class gets its nearest registered base's rules (looked up once).
    """
    cls = type(stmt)
    kind = _KINDS.get(cls)
    if kind is None:
        for base in cls.__mro__[1:]:
            kind = _KINDS.get(base)
            if kind is not None:
                _KINDS[cls] = kind
                break
    return kind


def rules(stmt: object) -> Kind[Any]:
    """The rules of ``stmt``'s kind, for a statement known to be one (a validated tree).

    Raises:
        TypeError: ``stmt`` is not a statement.
    """
    try:
        return _KINDS[type(stmt)]
    except KeyError:
        kind = kind_of(stmt)
        if kind is None:
            raise TypeError(f"not a statement: {stmt!r}") from None
        return kind


def kinds() -> Iterable[Kind[Any]]:
    """Every registered kind, in registration order (subclass entries left out)."""
    return [kind for cls, kind in _KINDS.items() if kind.statement is cls]


def duration_text(delay: object) -> str:
    """A short duration: ``1d 2h``, ``1m 30s``, ``0.5s`` (the repr if not a timedelta)."""
    if not isinstance(delay, timedelta):
        return repr(delay)
    rest = delay.total_seconds()
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return " ".join(parts)


def seconds(delay: object) -> int | float | None:
    """A duration as JSON: whole seconds as an int, else a float; None if not a timedelta."""
    if not isinstance(delay, timedelta):
        return None
    value = delay.total_seconds()
    return int(value) if value.is_integer() else value


def with_word(exits: list[Exit], word: str) -> list[Exit]:
    """``exits`` with ``word`` added to their labels (``"break"``, ``"continue"``)."""
    return [Exit(e.src, f"{e.label}, {word}" if e.label else word, e.event) for e in exits]

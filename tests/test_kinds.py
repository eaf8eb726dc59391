"""Statement kinds: every kind has its rules registered, and a new kind is one module's work.

The second half writes a small kind here, as a user or a new engineer would (a named block whose
body runs once, optionally skipped), registers it, and checks that validation, moving, JSON and
both diagrams all follow its rules without any other module knowing it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import stmtflow as sf
from stmtflow.analysis._walk import walk
from stmtflow.dsl._checks import cond_problems, name_problems
from stmtflow.dsl._kind import (
    Cursor,
    Drawing,
    Exit,
    Kind,
    Site,
    cond_value,
    kind_of,
    kinds,
    register,
    truth,
)
from stmtflow.dsl._statements import Statement


def test_every_statement_class_has_its_rules() -> None:
    classes = typing.get_args(Statement)
    assert classes, "the Statement union lists the kinds"
    missing = [cls.__name__ for cls in classes if cls not in {k.statement for k in kinds()}]
    assert missing == []


def test_sleep_is_the_wait_it_stands_for() -> None:
    nap = sf.Sleep("nap", sf.Timer(seconds=1).delay)
    assert isinstance(nap, sf.Wait)
    [timer] = nap.events
    assert (timer.event, type(timer.handler)) == ("nap.timer", sf.Timer)
    assert kind_of(nap).label == "Sleep"  # its own checks, JSON and drawing
    assert sf.find_handler("nap.timer", sf.S(nap)) is timer.handler


def test_a_subclass_of_a_statement_gets_its_base_rules() -> None:
    @dataclass(frozen=True, slots=True)
    class AuditedStep(sf.Step):
        pass

    kind = kind_of(AuditedStep("audit", print))
    assert kind is kind_of(sf.Step("x", print))
    workflow = sf.S(AuditedStep("audit", print))
    sf.validate(workflow)


def test_a_kind_is_registered_once() -> None:
    class Again(Kind[sf.Step]):
        statement = sf.Step

    with pytest.raises(ValueError, match="registered twice"):
        register(Again())


# -- a new kind, written as one module would be -------------------------------------------------


@dataclass(frozen=True, slots=True, init=False)
class Block:
    """A named block: its body runs once, unless ``skip`` holds when the block is reached."""

    name: str
    skip: Any = field(compare=False, repr=False)
    body: sf.Section

    def __init__(self, name: str, *body: Any, skip: Any = False) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "skip", skip)
        object.__setattr__(self, "body", sf.S(*body))


class BlockKind(Kind[Block]):
    statement = Block

    def names(self, stmt: Block) -> list[str]:
        return [stmt.name]

    def children(self, stmt: Block) -> tuple[Any, ...]:
        return (stmt.body,)

    def child_path(self, stmt: Block, index: int, kid: object, path: str) -> str:
        return f"{path}.Block({stmt.name!r})"

    def problems(self, stmt: Block, site: Site) -> list[str]:
        return name_problems(stmt.name) + cond_problems(stmt.skip)

    def enter(self, stmt: Block, cursor: Cursor) -> None:
        if not truth(stmt.skip):
            cursor.into(0, stmt.body)

    def json(self, stmt: Block, dump: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        body = [dump(kid) for kid in stmt.body.body]
        return {"type": self.label, "name": stmt.name, "skip": cond_value(stmt.skip), "body": body}

    def draw(self, stmt: Block, drawing: Drawing, entry: list[Exit]) -> list[Exit]:
        head = drawing.box(entry, f"Block {stmt.name}", "decision", stmt.name)
        return [*drawing.child((0,), [Exit(head, "run")]), Exit(head, "skip")]


register(BlockKind())


class Tour(sf.WorkflowState):
    log: list[str] = []
    skip_extras: bool = False

    def note(self, what: str) -> Callable[[], None]:
        return lambda: self.log.append(what)

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("start", self.note("start")),
            Block("extras", sf.Step("extra", self.note("extra")), skip=lambda: self.skip_extras),
            sf.Step("end", self.note("end")),
        )


@pytest.mark.parametrize(
    ("skip", "ran"), [(False, ["start", "extra", "end"]), (True, ["start", "end"])]
)
def test_a_new_kind_moves_threads_by_its_own_rules(skip: bool, ran: list[str]) -> None:
    wf = Tour(skip_extras=skip)
    state = sf.resume(wf, sf.new_state("tour-1", Tour))
    assert (state.status, wf.log) == (sf.WorkflowStatus.FINISHED, ran)


def test_a_new_kind_is_checked_found_written_and_drawn() -> None:
    tree = Tour().definition()
    assert [type(node).__name__ for node in walk(tree)].count("Block") == 1
    bad = sf.S(Block("", sf.Step("a", print), skip=3))
    with pytest.raises(sf.DefinitionError) as caught:
        sf.validate(bad)
    assert caught.value.issues == [
        "Block '' at S[0]: name must be a non-empty string, got ''",
        "Block '' at S[0]: condition must be a bool or a zero-argument callable, got int 3 "
        "(wrap an eager value in bool(...))",
    ]
    duplicate = sf.S(Block("a", sf.Step("a", print)))
    with pytest.raises(sf.DefinitionError, match=r"duplicate name 'a'.*Block\('a'\)"):
        sf.validate(duplicate)
    block = sf.definition_json(tree)["body"][1]
    assert block == {
        "type": "Block",
        "name": "extras",
        "skip": "lazy",
        "body": [{"type": "Step", "name": "extra", "retry": None}],
    }
    mermaid = sf.to_mermaid(tree)
    assert 'n1{"Block extras"}' in mermaid
    assert 'n1 -->|"run"| n1_0_0' in mermaid and 'n1 -->|"skip"| n2' in mermaid
    assert "n1_0_0" in sf.to_dot(tree)


def test_a_stored_position_inside_a_new_kind_resumes_after_a_reload() -> None:
    wf = Tour()
    state = sf.new_state("tour-2", Tour)
    # Stop at the step inside the block, reload from JSON, and go on: the thread climbs out of
    # the block by the block's rules.
    with pytest.raises(sf.StepLimitExceeded):
        sf.resume(wf, state, max_steps=1)
    assert (state.threads[0].cur_step, wf.log) == ("extra", ["start"])
    again = sf.load_state(state.model_dump_json())
    data = Tour.model_validate_json(wf.model_dump_json())
    assert sf.check_compatibility(Tour().definition(), [again]) == []
    sf.resume(data, again)
    assert (again.status, data.log) == (sf.WorkflowStatus.FINISHED, ["start", "extra", "end"])

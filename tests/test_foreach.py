"""`ForEach`: one thread per item, never more than ``max_concurrency`` alive, joined at the end;
the parent's state holds the index of the next item and the live threads, no items and nothing
per ended item."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field
from store_urls import EVERY_STORE, store_url

import stmtflow as sf
from stmtflow.runtime import Engine
from stmtflow.state import ForEachProgress
from stmtflow.testing import WorkflowHarness


class Fan(sf.WorkflowState):
    """Each item's thread takes a step, waits for its own event, takes another step."""

    items: list[Any] = Field(default_factory=list)
    bound: int | None = None
    log: list[str] = Field(default_factory=list)

    def definition(self) -> sf.Section:
        return sf.S(
            sf.ForEach("each", lambda: self.items, self.item, max_concurrency=self.bound),
            sf.Step("after", lambda: self.log.append("after")),
        )

    def item(self, item: Any) -> sf.Section:
        return sf.S(
            sf.Step("begin", lambda: self.log.append(f"begin {item}")),
            sf.Wait("hold", sf.OnEvent("release", lambda: None)),
            sf.Step("end", lambda: self.log.append(f"end {item}")),
        )


SNAPSHOTS = Path(__file__).parent / "snapshots" / "states"


def alive(state: sf.State) -> list[sf.Thread]:
    return [t for t in state.threads if t.group == "each"]


class Crash(Exception):
    """The process dies before a checkpoint is stored."""


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=12),
    bound=st.none() | st.integers(min_value=1, max_value=5),
    data=st.data(),
)
def test_never_more_than_the_bound_alive_and_every_item_runs_once(
    size: int, bound: int | None, data: st.DataObject
) -> None:
    """Released in any order, with crashes before any checkpoint (the work redone from the last
    saved JSON): never more than ``bound`` item threads alive, each item's thread started once,
    every item run once, then the ForEach goes on."""
    items = [f"i{n}" for n in range(size)]
    wf, state = Fan(items=items, bound=bound), sf.new_state("fan-1", Fan)
    saved = (wf.model_dump_json(), state.model_dump_json())
    started: dict[str, Any] = {}  # item thread id -> its item, as saved
    most, left, crashes = 0, -1, 0

    def checkpoint(kind: sf.CheckpointType) -> None:
        nonlocal most, left, saved
        if left == 0:
            raise Crash
        left -= 1
        live = alive(state)
        assert len(live) <= (bound or size)
        most = max(most, len(live))
        for thread in live:
            assert started.setdefault(thread.id, thread.arg) == thread.arg
        saved = (wf.model_dump_json(), state.model_dump_json())

    while True:
        wf, state = Fan.model_validate_json(saved[0]), sf.load_state(saved[1])
        if state.status is sf.WorkflowStatus.FINISHED:
            break
        left = (
            data.draw(st.integers(0, 8), label="checkpoints before a crash") if crashes < 6 else -1
        )
        try:
            waiting = [t for t in alive(state) if t.cur_step == "hold"]
            # (Saved "waiting" with none at hold: a crash came before the ForEach's wake.)
            if state.status is sf.WorkflowStatus.WAITING and waiting:
                pick = data.draw(st.sampled_from([t.id for t in waiting]), label="released")
                req = sf.CallbackRequest(name="release", thread_id=pick)
                sf.handle_callback(req, wf, state, None)
            sf.resume(wf, state, checkpoint)
        except Crash:
            crashes += 1
    assert sorted(e for e in wf.log if e.startswith("begin")) == sorted(f"begin {i}" for i in items)
    assert sorted(e for e in wf.log if e.startswith("end")) == sorted(f"end {i}" for i in items)
    assert wf.log[-1] == "after"
    assert most == min(bound or size, size)
    assert sorted(started.values()) == sorted(items)  # one thread per item, by its index
    assert all(started[f"each[{n}]"] == item for n, item in enumerate(items))
    assert state.groups == {} and state.threads == []


def test_items_start_in_order_as_threads_end() -> None:
    wf, state = Fan(items=["a", "b", "c", "d"], bound=2), sf.new_state("fan-1", Fan)
    sf.resume(wf, state)
    assert [(t.id, t.arg) for t in alive(state)] == [("each[0]", "a"), ("each[1]", "b")]
    main = state.threads[0]
    assert main.foreach is not None
    assert (main.foreach.next, main.foreach.count, main.foreach.pending) == (2, 4, ())
    assert json.loads(state.model_dump_json())["threads"][0]["foreach"] == {
        "group": "each",
        "next": 2,
        "count": 4,
    }
    sf.handle_callback(sf.CallbackRequest(name="release", thread_id="each[1]"), wf, state, None)
    sf.resume(wf, state)
    assert [(t.id, t.arg) for t in alive(state)] == [("each[0]", "a"), ("each[2]", "c")]
    assert wf.log == ["begin a", "begin b", "end b", "begin c"]


def test_the_parent_state_grows_with_live_threads_not_with_items() -> None:
    def sizes(count: int) -> tuple[int, int, int]:
        """(threads near the end, state bytes just after the start, near the end)."""
        wf, state = Fan(items=list(range(count)), bound=3), sf.new_state("fan-1", Fan)
        sf.resume(wf, state)
        started = len(state.model_dump_json())
        for _ in range(count - 3):  # run all but the last three items
            first = alive(state)[0].id
            sf.handle_callback(sf.CallbackRequest(name="release", thread_id=first), wf, state, None)
            sf.resume(wf, state)
        return len(state.threads), started, len(state.model_dump_json())

    small, large = sizes(10), sizes(1000)
    assert small[0] == large[0] == 4  # the main thread and three item threads
    # Only numbers grow (each[997] vs each[7], the count, the pcs): no item not started yet
    # (997 of them, some 4 KB, at the start) and no record per ended item (some 200 bytes each).
    assert large[1] - small[1] < 10
    assert large[2] - small[2] < 100


def test_items_are_read_again_by_index_as_the_next_ones_start() -> None:
    """The items are not kept in the state: each start reads them (here from the data) and
    takes the next by index, so a value changed in place before its thread starts is seen."""
    calls: list[int] = []

    class Again(Fan):
        def definition(self) -> sf.Section:
            def items() -> list[Any]:
                calls.append(1)
                return self.items

            return sf.S(sf.ForEach("each", items, self.item, max_concurrency=1))

    wf, state = Again(items=["a", "b", "c"]), sf.new_state("again-1", Again)
    sf.resume(wf, state)
    wf.items[2] = "C"
    for _ in range(3):
        pick = alive(state)[0].id
        sf.handle_callback(sf.CallbackRequest(name="release", thread_id=pick), wf, state, None)
        sf.resume(wf, state)
    assert wf.log == ["begin a", "end a", "begin b", "end b", "begin C", "end C"]
    assert len(calls) == 3  # reached (and a, started), b started, C started; none at the end


def test_items_whose_length_changed_while_it_ran_are_refused_and_nothing_is_applied() -> None:
    wf, state = Fan(items=["a", "b", "c"], bound=1), sf.new_state("fan-1", Fan)
    sf.resume(wf, state)
    sf.handle_callback(sf.CallbackRequest(name="release", thread_id="each[0]"), wf, state, None)
    wf.items.pop(0)  # would shift "c" to index 1 and skip it
    message = (
        r"workflow 'fan-1' \(Fan\), thread '_main_': ForEach 'each': its items changed "
        r"while it ran \(3 when it was reached, 2 now\)"
    )
    with pytest.raises(sf.DefinitionError, match=message):
        sf.resume(wf, state)  # each[0] takes its last step and ends; the ForEach is refused
    assert wf.log == ["begin a", "end a"]
    main = state.threads[0]
    assert [t.id for t in state.threads] == ["_main_"]  # no item started
    assert main.foreach == ForEachProgress(group="each", next=1, count=3)
    before = (wf.model_dump_json(), state.model_dump_json())
    with pytest.raises(sf.DefinitionError, match=message):
        sf.resume(wf, state)
    assert (wf.model_dump_json(), state.model_dump_json()) == before


def test_a_state_written_with_the_pending_items_goes_on_with_them() -> None:
    """States stored before `ForEachProgress.count` existed hold the items not started yet
    (``pending``): they load and go on with those items, whatever the definition's list is."""
    old = json.loads(SNAPSHOTS.joinpath("composition_with_pending.json").read_text())
    old["threads"][0]["foreach"] = {"group": "ship", "next": 2, "pending": ["c"]}
    old["threads"] = old["threads"][:2]  # only ship[1] alive: ship[2] ("c") not started yet
    old["pc"] = 20
    state = sf.load_state(json.dumps(old))
    assert state.threads[0].foreach == ForEachProgress(group="ship", next=2, pending=("c",))

    class Buy(sf.WorkflowState):  # as tests/test_composition_format.py's, from its ForEach on
        log: list[str] = []

        def definition(self) -> sf.Section:
            return sf.S(
                sf.Step("quotes", print),
                sf.Step("join", print),
                sf.ForEach("ship", ["x", "y", "z"], self.ship, max_concurrency=2),
            )

        def ship(self, item: str) -> sf.Section:
            return sf.S(
                sf.Wait("hold", sf.OnEvent("shipped", lambda: None)),
                sf.Step("log", lambda: self.log.append(item)),
            )

    wf = Buy()
    for thread in ("ship[1]", "ship[2]"):
        sf.handle_callback(sf.CallbackRequest(name="shipped", thread_id=thread), wf, state, None)
        sf.resume(wf, state)
    assert wf.log == ["b", "c"]  # ship[1]'s arg, then the pending item, not the list's "z"
    assert state.status is sf.WorkflowStatus.FINISHED


def test_a_foreach_in_another_thread_prefixes_its_ids_with_that_thread() -> None:
    class Inner(Fan):
        def definition(self) -> sf.Section:
            return sf.S(
                sf.Go("outer", sf.ForEach("each", ["x"], self.item), id="o1", group="outer"),
                sf.Join("j", "outer"),
            )

    state = sf.new_state("in-1", Inner)
    sf.resume(Inner(), state)
    assert [(t.id, t.group) for t in state.threads] == [
        ("_main_", None),
        ("o1", "outer"),
        ("o1/each[0]", "o1/each"),
    ]


def test_ending_a_thread_at_a_foreach_ends_its_item_threads() -> None:
    class Race(Fan):
        def definition(self) -> sf.Section:
            return sf.S(
                sf.Go("slow", sf.ForEach("each", ["x", "y"], self.item), group="race"),
                sf.Go("fast", sf.Step("win", lambda: self.log.append("win")), group="race"),
                sf.Join("first", "race", until="any"),
                sf.Wait("stay", sf.OnEvent("stop", lambda: None)),
            )

    wf, state = Race(), sf.new_state("r-1", Race)
    sf.resume(wf, state)
    assert wf.log == ["win", "begin x", "begin y"]  # creation order: the items come last
    assert [t.id for t in state.threads] == ["_main_"]
    assert state.groups == {}


@pytest.mark.parametrize(
    ("items", "bound", "message"),
    [
        ((1, 2), None, "items must be a list or a zero-argument callable, got tuple"),
        ({"a": 1}, None, "items must be a list or a zero-argument callable, got dict"),
        ([1], 0, "max_concurrency must be None or an int of at least 1, got int 0"),
        ([1], 2.5, "max_concurrency must be None or an int of at least 1, got float 2.5"),
        ([1], True, "max_concurrency must be None or an int of at least 1, got bool True"),
    ],
)
def test_bad_items_or_bounds_are_definition_errors(items: Any, bound: Any, message: str) -> None:
    with pytest.raises(sf.DefinitionError) as caught:
        sf.validate(sf.S(sf.ForEach("each", items, lambda i: sf.S(), max_concurrency=bound)))
    assert any(i.startswith("ForEach 'each' at S[0]: " + message) for i in caught.value.issues)


class Lazy(sf.WorkflowState):
    """Its items come from the data when the ForEach is reached, after an event."""

    items: Any = None

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Wait("until_ready", sf.OnEvent("ready", self.ready)),
            sf.ForEach("each", lambda: self.items, lambda i: sf.S(sf.Step("s", print))),
        )

    def ready(self, items: Any) -> None:
        self.items = items


@pytest.fixture(params=EVERY_STORE)
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    url = store_url(request, tmp_path, request.param, "foreach.db")
    with Engine(url, workflows=[Fan, Lazy, BadBound]) as eng:
        yield eng


def test_foreach_through_the_engine(engine: Engine) -> None:
    engine.start(Fan, {"items": [1, 2, 3], "bound": 2}, id="fan-1")
    for thread in ("each[0]", "each[1]", "each[2]"):
        engine.send("fan-1", "release", None, thread_id=thread)
    done = engine.get("fan-1")
    assert done.status == "finished"
    assert isinstance(done.data, Fan)
    assert done.data.log[-1] == "after" and len(done.data.log) == 7


def test_lazy_items_that_are_no_list_are_refused_and_nothing_is_stored(engine: Engine) -> None:
    engine.start(Lazy, id="lazy-1")
    before = engine.store.get("lazy-1")
    message = (
        r"workflow 'lazy-1' \(Lazy\), thread '_main_': ForEach 'each': items must be a "
        r"list, got str 'abc'"
    )
    with pytest.raises(sf.DefinitionError, match=message):
        engine.send("lazy-1", "ready", "abc")
    # The send is refused as a whole: the event not delivered, the row as it was.
    assert engine.store.get("lazy-1") == before
    engine.send("lazy-1", "ready", [1])  # still waiting for it
    assert engine.get("lazy-1").status is sf.WorkflowStatus.FINISHED


def test_lazy_items_that_are_no_list_leave_a_plain_resume_unchanged() -> None:
    wf, state = Lazy(), sf.new_state("lazy-1", Lazy)
    sf.resume(wf, state)
    sf.handle_callback(sf.CallbackRequest(name="ready"), wf, state, (1, 2))
    before = (wf.model_dump_json(), state.model_dump_json())
    with pytest.raises(sf.DefinitionError, match="items must be a list, got tuple"):
        sf.resume(wf, state)
    assert (wf.model_dump_json(), state.model_dump_json()) == before


def test_a_foreach_is_drawn_with_a_lane_for_its_items() -> None:
    tree = Fan(bound=2).definition()
    chart = sf.to_mermaid(tree)
    assert 'n0[["ForEach each<br>one thread per item, at most 2 at once"]]' in chart
    assert 'subgraph n0_lane ["thread each[i], one per item"]' in chart
    assert 'n0 -->|"all ended"| n1' in chart
    assert sf.definition_json(tree)["body"][0] == {
        "type": "ForEach",
        "name": "each",
        "items": "lazy",
        "body": "lazy",
        "max_concurrency": 2,
    }
    assert (
        'label="ForEach each\\none thread per item, at most 2 at once", shape=box3d'
        in sf.to_dot(tree)
    )


def test_a_bad_bound_is_refused_before_anything_is_stored(engine: Engine) -> None:
    with pytest.raises(
        sf.DefinitionError, match=r"workflow 'bad-1' \(BadBound\): ForEach 'each' at S\[0\]"
    ):
        engine.start(BadBound, id="bad-1")
    assert engine.store.list() == []


def test_a_bound_from_the_data_is_checked_when_the_foreach_is_reached() -> None:
    wf, state = Fan(items=[1, 2], bound=0), sf.new_state("fan-0", Fan)
    before = state.model_dump_json()
    with pytest.raises(
        sf.DefinitionError,
        match=r"workflow 'fan-0' \(Fan\), thread '_main_': ForEach 'each': max_concurrency must "
        r"be None or an int of at least 1, got int 0",
    ):
        sf.resume(wf, state)
    assert state.model_dump_json() == before


class BadBound(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.ForEach("each", [1], lambda i: sf.S(), max_concurrency=0))


def test_check_compatibility_looks_into_the_bodies_built_from_items() -> None:
    wf, state = Fan(items=["a"]), sf.new_state("fan-1", Fan)
    sf.resume(wf, state)
    assert sf.check_compatibility(Fan(items=["a"]), [state]) == []

    class Renamed(Fan):
        def item(self, item: Any) -> sf.Section:
            return sf.S(sf.Wait("held", sf.OnEvent("release", lambda: None)))

    [finding] = sf.check_compatibility(Renamed(items=["a"]), [state])
    assert finding.thread == "each[0]" and "'hold' no longer exists" in finding.problem


class Paced(sf.WorkflowState):
    """Each item waits a minute (a timer per item thread) before it is done."""

    done: list[int] = Field(default_factory=list)

    def definition(self) -> sf.Section:
        return sf.S(
            sf.ForEach("each", [1, 2, 3, 4, 5], self.item, max_concurrency=2),
            sf.Step("after", lambda: None),
        )

    def item(self, n: int) -> sf.Section:
        return sf.S(
            sf.Sleep("pace", timedelta(minutes=n)),
            sf.Step("mark", lambda: self.done.append(n)),
        )


def test_the_harness_drives_item_timers_with_its_fake_clock() -> None:
    h = WorkflowHarness(Paced).start()
    assert [t.id for t in h.state.threads] == ["_main_", "each[0]", "each[1]"]
    assert h.advance(timedelta(minutes=1)) == ["pace.timer"]  # each[0]'s minute
    assert h.data.done == [1] and [t.id for t in h.state.threads][1:] == ["each[1]", "each[2]"]
    h.advance(timedelta(minutes=10))
    assert sorted(h.data.done) == [1, 2, 3, 4, 5] and h.status is sf.WorkflowStatus.FINISHED
    assert "mark" in h.log

"""`Join`: wait for all, any or N threads of a group; end the rest when ``cancel_rest``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field
from store_urls import EVERY_STORE, store_url

import stmtflow as sf
from stmtflow.runtime import Engine

TORN: list[tuple[str, str, bool]] = []


class Recorder(sf.BaseHandler):
    """An event armed outside, recording its teardowns (thread, event, handled)."""

    def setup(self, req: sf.CallbackRequest) -> str:
        return "armed"

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        return input

    def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        TORN.append((req.thread_id, req.name, handled))


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    TORN.clear()
    yield
    TORN.clear()


class Race(sf.WorkflowState):
    """Three racers in one group; each waits for its own event or a long timer."""

    until: Any = "all"
    cancel_rest: bool = True
    count: int = 3
    log: list[str] = Field(default_factory=list)

    def definition(self) -> sf.Section:
        racers = [
            sf.Go(
                f"racer{k}",
                sf.S(
                    sf.Wait(
                        f"wait{k}",
                        sf.On(f"go{k}", Recorder()),
                        sf.On(f"late{k}", sf.Timer(hours=1)),
                    ),
                    sf.Step(f"run{k}", lambda k=k: self.log.append(f"racer{k}")),
                ),
                group="racers",
            )
            for k in range(self.count)
        ]
        return sf.S(
            *racers,
            sf.Join("finish", "racers", until=self.until, cancel_rest=self.cancel_rest),
            sf.Step("after", lambda: self.log.append("after")),
            sf.Wait("hold", sf.OnEvent("release", lambda: None)),
        )


def run(wf: Race, *events: str) -> sf.State:
    state = sf.new_state("race-1", Race)
    sf.resume(wf, state)
    for event in events:
        sf.handle_callback(sf.CallbackRequest(name=event), wf, state, None)
        sf.resume(wf, state)
    return state


def live(state: sf.State) -> list[str]:
    return [t.id for t in state.threads]


def test_all_waits_for_every_thread() -> None:
    wf = Race()
    state = run(wf, "go1", "go0")
    assert wf.log == ["racer1", "racer0"] and state.threads[0].cur_step == "finish"
    assert state.groups == {"racers": 2}
    state = run(wf := Race(), "go1", "go0", "go2")
    assert wf.log == ["racer1", "racer0", "racer2", "after"]
    assert live(state) == ["_main_"] and state.groups == {}


def test_any_goes_on_with_the_first_and_ends_the_rest() -> None:
    wf = Race(until="any")
    state = run(wf, "go2")
    assert wf.log == ["racer2", "after"]
    assert live(state) == ["_main_"]
    # The losers' events were torn down unfired (the fired one of racer2 with handled=True).
    assert sorted(TORN) == [
        ("racer0", "go0", False),
        ("racer1", "go1", False),
        ("racer2", "go2", True),
    ]
    assert state.teardowns == [] and state.groups == {}
    # Their timers are cancelled: nothing is left to wake up.
    assert all(not t.wait_events or t.id == "_main_" for t in state.threads)


def test_n_waits_for_that_many() -> None:
    wf = Race(until=2)
    state = run(wf, "go0")
    assert wf.log == ["racer0"]
    state = run(wf := Race(until=2), "go0", "go1")
    assert wf.log == ["racer0", "racer1", "after"] and live(state) == ["_main_"]


def test_without_cancel_rest_the_others_run_on() -> None:
    wf = Race(until="any", cancel_rest=False)
    state = run(wf, "go1")
    assert wf.log == ["racer1", "after"]
    assert live(state) == ["_main_", "racer0", "racer2"] and TORN == [("racer1", "go1", True)]
    sf.handle_callback(sf.CallbackRequest(name="go0"), wf, state, None)
    sf.resume(wf, state)
    assert wf.log == ["racer1", "after", "racer0"]
    # Ended after the Join: counted for the next Join of the group, not this one.
    assert state.groups == {"racers": 1}


def test_threads_that_ended_before_the_join_count() -> None:
    class Quick(sf.WorkflowState):
        log: list[str] = Field(default_factory=list)

        def definition(self) -> sf.Section:
            return sf.S(
                sf.Go("a", sf.Step("step_a", lambda: self.log.append("a")), group="g"),
                sf.Go("b", sf.Wait("slow", sf.On("never", sf.Timer(days=1))), group="g"),
                sf.Sleep("pause", timedelta(0)),
                sf.Join("first", "g", until="any"),
                sf.Step("after", lambda: self.log.append("after")),
            )

    wf, state = Quick(), sf.new_state("q-1", Quick)
    sf.resume(wf, state)
    assert wf.log == ["a"] and state.groups == {"g": 1}
    sf.handle_callback(sf.CallbackRequest(name="pause.timer"), wf, state, None)
    sf.resume(wf, state)
    assert wf.log == ["a", "after"] and state.status is sf.WorkflowStatus.FINISHED


def test_a_group_with_no_live_thread_is_joined_at_once() -> None:
    class Empty(sf.WorkflowState):
        go: bool = False

        def definition(self) -> sf.Section:
            return sf.S(
                sf.If(self.go, sf.Go("g", sf.Step("s", print), group="g")),
                sf.Join("j", "g", until=3),
                sf.Step("after", print),
            )

    state = sf.new_state("e-1", Empty)
    sf.resume(Empty(), state)
    assert state.status is sf.WorkflowStatus.FINISHED


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ("most", 'until must be "all", "any" or an int of at least 1, got str'),
        (0, 'until must be "all", "any" or an int of at least 1, got int 0'),
        (True, 'until must be "all", "any" or an int of at least 1, got bool True'),
    ],
)
def test_a_bad_until_is_a_definition_error(until: Any, message: str) -> None:
    with pytest.raises(sf.DefinitionError) as caught:
        sf.validate(
            sf.S(sf.Go("g", sf.Step("s", print), group="g"), sf.Join("j", "g", until=until))
        )
    assert any(i.startswith("Join 'j' at S[1]: " + message) for i in caught.value.issues)


@pytest.fixture(params=EVERY_STORE)
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    url = store_url(request, tmp_path, request.param, "join.db")
    with Engine(url, workflows=[Race, Unknown]) as eng:
        yield eng


class Unknown(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Go("g", sf.Step("s", print), group="workers"), sf.Join("j", "wokers"))


def test_join_any_through_the_engine(engine: Engine) -> None:
    engine.start(Race, {"until": "any"}, id="race-1")
    engine.send("race-1", "go0")
    got = engine.get("race-1")
    assert isinstance(got.data, Race)
    assert got.data.log == ["racer0", "after"]
    assert [t.id for t in got.state.threads] == ["_main_"]
    assert sorted(TORN) == [
        ("racer0", "go0", True),
        ("racer1", "go1", False),
        ("racer2", "go2", False),
    ]
    # No racer timer remains armed: the only pending event is the main thread's.
    assert [(p.name, p.thread_id) for p in engine.pending("race-1")] == [("release", "_main_")]


def test_a_join_on_an_unknown_group_is_refused_before_anything_is_stored(engine: Engine) -> None:
    with pytest.raises(
        sf.DefinitionError,
        match=r"Join 'j' at S\[1\]: no Go starts threads in group 'wokers' \(groups: 'workers'\)",
    ):
        engine.start(Unknown, id="u-1")
    assert engine.store.list() == []


def test_a_join_is_drawn_as_a_trapezium() -> None:
    tree = Race(until="any").definition()
    assert 'n3[\\"Join finish<br>any of group racers, end the rest"/]' in sf.to_mermaid(tree)
    dot = sf.to_dot(tree)
    assert 'label="Join finish\\nany of group racers, end the rest", shape=invtrapezium' in dot
    assert sf.definition_json(tree)["body"][3] == {
        "type": "Join",
        "name": "finish",
        "group": "racers",
        "until": "any",
        "cancel_rest": True,
    }


def test_an_until_from_the_data_is_checked_when_the_join_is_reached() -> None:
    sf.resume(Race(), sf.new_state("race-0", Race))  # the class was built with good values
    wf, state = Race(until="most"), sf.new_state("race-1", Race)
    with pytest.raises(
        sf.DefinitionError,
        match=r"workflow 'race-1' \(Race\), thread '_main_': Join 'finish': until must be",
    ):
        sf.resume(wf, state)


@settings(max_examples=80, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=5),
    until=st.sampled_from(["all", "any", 1, 2, 3, 6]),
    cancel_rest=st.booleans(),
    data=st.data(),
)
def test_a_join_goes_on_exactly_when_enough_threads_ended(
    count: int, until: Any, cancel_rest: bool, data: st.DataObject
) -> None:
    """Racers released in any order, the state saved and loaded between deliveries."""
    needed = count if until == "all" else 1 if until == "any" else min(until, count)
    wf = Race(until=until, cancel_rest=cancel_rest, count=count)
    state = sf.new_state("race-1", Race)
    sf.resume(wf, state)
    released = 0
    while "after" not in wf.log:
        wf = Race.model_validate_json(wf.model_dump_json())
        state = sf.load_state(state.model_dump_json())
        racers = [t.id for t in state.threads if t.group == "racers"]
        pick = data.draw(st.sampled_from(racers))
        event = f"go{pick.removeprefix('racer')}"
        sf.handle_callback(sf.CallbackRequest(name=event), wf, state, None)
        sf.resume(wf, state)
        released += 1
        assert ("after" in wf.log) == (released >= needed)
    left = [t.id for t in state.threads if t.group == "racers"]
    assert len(left) == (0 if cancel_rest else count - released)
    assert state.groups == {}
    assert len([e for e in wf.log if e.startswith("racer")]) == released

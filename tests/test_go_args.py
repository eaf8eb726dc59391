"""`Go(..., arg=, group=)` with a callable body: every thread sees its own arg, however often
the definition is rebuilt and the state saved and loaded (DESIGN §6)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import Field
from store_urls import EVERY_STORE, store_url

import stmtflow as sf
from stmtflow.runtime import Engine

ROUNDS = 4


class Fanout(sf.WorkflowState):
    """Three workers from one ``Go`` in a loop; each logs its own arg on every round."""

    started: int = 0
    log: list[str] = Field(default_factory=list)

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "start",
                lambda: self.started < 3,
                sf.Go(
                    "worker",
                    self.worker,
                    id=lambda: f"w{self.started}",
                    arg=lambda: {"k": self.started, "name": f"worker-{self.started}"},
                    group="workers",
                ),
                sf.Step("count", self.count),
            ),
            sf.Join("all", "workers"),
            sf.Step("done", lambda: self.log.append("done")),
        )

    def count(self) -> None:
        self.started += 1  # changes the data: every later step rebuilds the definition

    def worker(self, arg: dict[str, Any]) -> sf.Section:
        def note() -> None:
            self.log.append(f"{sf.current_step().thread_id}:{arg['k']}:{arg['name']}")

        return sf.S(
            sf.For(
                "rounds",
                lambda: len([e for e in self.log if e.startswith(f"w{arg['k']}:")]) < ROUNDS,
                sf.Step("note", note),
                sf.Wait("poke", sf.OnEvent("poked", lambda: None)),
            ),
            sf.Step("last", note),
        )


def check_log(log: list[str]) -> None:
    assert log[-1] == "done"
    for k in range(3):
        mine = [entry for entry in log if entry.startswith(f"w{k}:")]
        assert mine == [f"w{k}:{k}:worker-{k}"] * (ROUNDS + 1)
    assert len(log) == 3 * (ROUNDS + 1) + 1


def test_plain_resume_with_a_reload_at_every_checkpoint() -> None:
    saved: dict[str, str] = {}
    wf = Fanout()
    state = sf.new_state("fan-1", Fanout)

    def checkpoint(kind: sf.CheckpointType) -> None:
        saved["data"], saved["state"] = wf.model_dump_json(), state.model_dump_json()

    def reload() -> None:
        nonlocal wf, state
        wf = Fanout.model_validate_json(saved["data"])
        state = sf.load_state(saved["state"])

    sf.resume(wf, state, checkpoint)
    assert [t.arg for t in state.threads[1:]] == [{"k": k, "name": f"worker-{k}"} for k in range(3)]
    assert {t.group for t in state.threads[1:]} == {"workers"}
    for _ in range(ROUNDS):
        for k in (2, 0, 1):  # out of start order
            reload()
            req = sf.CallbackRequest(name="poked", thread_id=f"w{k}")
            sf.handle_callback(req, wf, state, None)
            checkpoint(sf.CheckpointType.AFTER_RESUME)
            reload()
            sf.resume(wf, state, checkpoint)
    reload()
    assert state.status is sf.WorkflowStatus.FINISHED
    check_log(wf.log)
    assert state.groups == {}


@pytest.fixture(params=EVERY_STORE)
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    url = store_url(request, tmp_path, request.param, "go-args.db")
    with Engine(url, workflows=[Fanout]) as eng:
        yield eng


def test_each_thread_keeps_its_arg_through_the_engine(engine: Engine) -> None:
    engine.start(Fanout, id="fan-1")
    for _ in range(ROUNDS):
        for k in (1, 2, 0):
            engine.send("fan-1", "poked", None, thread_id=f"w{k}")
    done = engine.get("fan-1")
    assert done.status == "finished"
    assert isinstance(done.data, Fanout)
    check_log(done.data.log)


def test_the_arg_is_in_the_state_json_and_left_out_when_unused() -> None:
    wf, state = Fanout(), sf.new_state("fan-1", Fanout)
    sf.resume(wf, state)
    threads = sf.load_state(state.model_dump_json()).threads
    assert [t.arg for t in threads] == [None] + [{"k": k, "name": f"worker-{k}"} for k in range(3)]
    text = state.model_dump_json()
    main = text[text.index('{"id":"_main_"') : text.index('{"id":"w0"')]
    assert '"arg"' not in main and '"group"' not in main
    assert '"arg":{"k":0,"name":"worker-0"},"group":"workers"' in text


def test_an_arg_that_is_not_json_is_refused_naming_the_go() -> None:
    class Bad(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Go("g", lambda a: sf.S(sf.Step("s", print)), arg=lambda: {1, 2}))

    wf, state = Bad(), sf.new_state("bad-1", Bad)
    before = state.model_dump_json()
    with pytest.raises(sf.ExecutionError, match=r"workflow 'bad-1'.*thread '_main_'.*Go 'g'.*JSON"):
        sf.resume(wf, state)
    assert state.model_dump_json() == before


def test_definition_checks_of_go_args_groups_and_bodies() -> None:
    with pytest.raises(sf.DefinitionError) as caught:
        sf.validate(
            sf.S(
                sf.Go("a", lambda: sf.S(), group=""),
                sf.Go("b", sf.Step("s", print), arg=object()),
                sf.Join("j", "nobody"),
            )
        )
    issues = caught.value.issues
    assert any("Go 'a'" in i and "body must take exactly one argument" in i for i in issues)
    assert any("Go 'a'" in i and "group must be a non-empty string" in i for i in issues)
    assert any("Go 'b'" in i and "arg must be JSON-ready" in i for i in issues)
    assert any("Join 'j'" in i and "no Go starts threads in group 'nobody'" in i for i in issues)


def test_a_body_that_raises_is_an_execution_error_naming_the_thread() -> None:
    class Raises(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Go("g", lambda a: 1 / 0, arg=3, group="g"), sf.Join("j", "g"))

    with pytest.raises(sf.ExecutionError, match=r"thread 'g'.*body of 'g'.*arg 3.*ZeroDivision"):
        sf.resume(Raises(), sf.new_state("r-1", Raises))


@pytest.mark.parametrize(
    "store",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ],
)
def test_each_thread_keeps_its_arg_with_a_fresh_engine_for_every_event(
    store: str, request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    """Nothing kept in memory between events: every delivery loads the stored JSON."""
    if store == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = request.getfixturevalue("pg_url" if store == "postgres" else "redis_url")
    with Engine(url, workflows=[Fanout]) as engine:
        engine.start(Fanout, id="fan-1")
    for _ in range(ROUNDS):
        for k in (0, 2, 1):
            with Engine(url, workflows=[Fanout]) as engine:
                engine.send("fan-1", "poked", None, thread_id=f"w{k}")
    with Engine(url, workflows=[Fanout]) as engine:
        done = engine.get("fan-1")
    assert done.status == "finished"
    assert isinstance(done.data, Fanout)
    check_log(done.data.log)


def test_a_callable_body_is_drawn_as_a_lane_of_its_own() -> None:
    chart = sf.to_mermaid(Fanout().definition())
    assert 'subgraph n0_0_0_lane ["thread worker (id: lazy)"]' in chart
    assert 'n0_0_0_body["body(arg)"]' in chart
    assert sf.definition_json(Fanout().definition())["body"][0]["body"][0] == {
        "type": "Go",
        "name": "worker",
        "id": "lazy",
        "body": "lazy",
        "arg": "lazy",
        "group": "workers",
    }


def test_an_invalid_built_body_is_a_definition_error_naming_the_thread_and_arg() -> None:
    class Invalid(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(
                sf.Go("outer", lambda a: sf.S(sf.Step("", print)), group="o", arg=2),
                sf.Join("j", "o"),
            )

    state = sf.new_state("n-1", Invalid)
    with pytest.raises(
        sf.DefinitionError,
        match=r"workflow 'n-1' \(Invalid\), thread 'outer', the body of 'outer' built from arg 2: "
        r"Step '' at S\[0\]: name must be a non-empty string",
    ):
        sf.resume(Invalid(), state)
    # The main thread's moves before it are units of their own; the thread did not move.
    assert [(t.id, t.cur_step) for t in state.threads] == [("_main_", "j"), ("outer", "")]

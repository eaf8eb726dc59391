"""YAML DAGs (DESIGN §9, issue 18): `stmtflow.dag.load` — parallel steps, dependency outputs,
retries with backoff, fallback, compensation in reverse completion order, timeouts, the schema
and every problem reported at once, cycles named; memory, SQLite and PostgreSQL through the
Engine, and a crash in the middle of a DAG.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stmtflow as sf
from stmtflow import dag
from stmtflow.runtime import Engine
from stmtflow.testing import WorkflowHarness

ROOT = Path(__file__).resolve().parent.parent


class Calls:
    """Handlers that log what they were called with, and can be told to fail."""

    def __init__(self) -> None:
        self.log: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, int] = {}  # handler → failures left
        self.lock = threading.Lock()

    def handler(self, name: str, output: Any = None) -> Callable[[dict[str, Any]], Any]:
        def run(inputs: dict[str, Any]) -> Any:
            with self.lock:
                self.log.append((name, inputs))
                failing = self.fail.get(name, 0) > 0
                if failing:
                    self.fail[name] -= 1
            if failing:
                raise ConnectionError(f"{name} unavailable")
            return name if output is None else output

        return run

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def handlers(self, *names: str) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {name: self.handler(name) for name in names}


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dag.db'}"
    return "memory://"


# -- running ------------------------------------------------------------------------------------


def test_independent_steps_run_in_parallel() -> None:
    meet = threading.Barrier(2, timeout=10)  # breaks unless both handlers are in it at once

    def side(name: str) -> Callable[[dict[str, Any]], str]:
        def run(inputs: dict[str, Any]) -> str:
            meet.wait()
            return name

        return run

    Pair = dag.load(
        """
        steps:
          - {id: left, handler: left}
          - {id: right, handler: right}
          - {id: both, handler: both, depends_on: [left, right]}
        """,
        handlers={"left": side("left"), "right": side("right"), "both": lambda i: sorted(i)},
    )
    with Engine("memory://", [Pair]) as engine:
        inst = engine.start(Pair, id="pair-1")
    assert inst.status is sf.WorkflowStatus.FINISHED, inst.error
    assert inst.data.outputs == {  # type: ignore[attr-defined]
        "left": "left",
        "right": "right",
        "both": ["input", "left", "right"],
    }


def test_steps_freed_by_the_same_dependency_run_in_parallel() -> None:
    meet = threading.Barrier(3, timeout=10)  # all three branches after `split` at once

    def branch(inputs: dict[str, Any]) -> int:
        meet.wait()
        return int(inputs["split"])

    Diamond = dag.load(
        """
        steps:
          - {id: split, handler: split}
          - {id: x, handler: branch, depends_on: [split]}
          - {id: y, handler: branch, depends_on: [split]}
          - {id: z, handler: branch, depends_on: [split]}
          - {id: merge, handler: merge, depends_on: [x, y, z]}
        """,
        handlers={
            "split": lambda i: 7,
            "branch": branch,
            "merge": lambda i: i["x"] + i["y"] + i["z"],
        },
    )
    harness = WorkflowHarness(Diamond).start()
    assert harness.status is sf.WorkflowStatus.FINISHED, harness.state.error
    assert harness.data.outputs["merge"] == 21


def test_async_handlers_run_in_parallel_too() -> None:
    started: list[str] = []

    def side(name: str) -> Callable[[dict[str, Any]], Any]:
        async def run(inputs: dict[str, Any]) -> str:
            started.append(name)
            for _ in range(200):  # wait (up to 2 s) until the other one started as well
                if len(started) == 2:
                    return f"{name} saw {len(started)}"
                await asyncio.sleep(0.01)
            return f"{name} alone"

        return run

    Pair = dag.load(
        "steps: [{id: a, handler: a}, {id: b, handler: b}]",
        handlers={"a": side("a"), "b": side("b")},
    )
    with Engine("memory://", [Pair]) as engine:
        inst = engine.start(Pair, id="async-1")
    assert inst.data.outputs == {"a": "a saw 2", "b": "b saw 2"}  # type: ignore[attr-defined]


def test_handlers_receive_the_outputs_of_their_dependencies_and_the_input() -> None:
    seen: dict[str, dict[str, Any]] = {}

    def record(name: str, value: Any) -> Callable[[dict[str, Any]], Any]:
        def run(inputs: dict[str, Any]) -> Any:
            seen[name] = inputs
            return value

        return run

    Flow = dag.load(
        """
        name: Flow
        steps:
          - {id: fetch, handler: fetch}
          - {id: parse, handler: parse, depends_on: [fetch]}
          - {id: count, handler: count, depends_on: [fetch]}
          - {id: report, handler: report, depends_on: [parse, count]}
        """,
        handlers={
            "fetch": record("fetch", {"rows": [1, 2]}),
            "parse": record("parse", [1, 2]),
            "count": record("count", 2),
            "report": record("report", "2 rows"),
        },
    )
    harness = WorkflowHarness(Flow, data={"input": {"day": "mon"}}).start()
    assert harness.status is sf.WorkflowStatus.FINISHED
    assert Flow.__name__ == "Flow"
    assert seen["fetch"] == {"input": {"day": "mon"}}
    assert seen["parse"] == {"input": {"day": "mon"}, "fetch": {"rows": [1, 2]}}
    assert seen["report"] == {"input": {"day": "mon"}, "parse": [1, 2], "count": 2}
    assert harness.data.outputs["report"] == "2 rows"
    assert harness.log.index("fetch") < harness.log.index("parse") < harness.log.index("report")


def test_retry_with_exponential_backoff_on_the_fake_clock() -> None:
    calls = Calls()
    calls.fail = {"flaky": 2}
    Flaky = dag.load(
        """
        steps:
          - id: flaky
            handler: flaky
            retry: {max_attempts: 3, backoff: exponential, initial_interval: 10s}
        """,
        handlers=calls.handlers("flaky"),
    )
    harness = WorkflowHarness(Flaky).start()
    assert calls.names() == ["flaky"] and harness.status is sf.WorkflowStatus.WAITING
    harness.advance(timedelta(seconds=9))
    assert calls.names() == ["flaky"]
    harness.advance(timedelta(seconds=1))  # 10 s: the second attempt
    assert calls.names() == ["flaky"] * 2
    harness.advance(timedelta(seconds=19))  # exponential: 20 s before the third
    assert calls.names() == ["flaky"] * 2
    harness.advance(timedelta(seconds=1))
    assert calls.names() == ["flaky"] * 3
    assert harness.status is sf.WorkflowStatus.FINISHED
    assert harness.data.outputs == {"flaky": "flaky"}


def test_constant_backoff_waits_the_same_each_time() -> None:
    calls = Calls()
    calls.fail = {"flaky": 2}
    Flaky = dag.load(
        "steps: [{id: f, handler: flaky, retry: {max_attempts: 3, backoff: constant,"
        " initial_interval: 500ms}}]",
        handlers=calls.handlers("flaky"),
    )
    harness = WorkflowHarness(Flaky).start()
    harness.advance(timedelta(milliseconds=500))
    assert len(calls.log) == 2
    harness.advance(timedelta(milliseconds=500))
    assert len(calls.log) == 3 and harness.status is sf.WorkflowStatus.FINISHED


def test_a_fallback_runs_when_the_attempts_ran_out_and_its_output_is_the_steps() -> None:
    calls = Calls()
    calls.fail = {"live": 5}
    Prices = dag.load(
        """
        steps:
          - id: prices
            handler: live
            fallback: cached
            retry: {max_attempts: 2, initial_interval: 1}
          - {id: quote, handler: quote, depends_on: [prices]}
        """,
        handlers={
            "live": calls.handler("live"),
            "cached": calls.handler("cached", {"eur": 1.0}),
            "quote": calls.handler("quote"),
        },
    )
    harness = WorkflowHarness(Prices).start()
    harness.advance(timedelta(seconds=1))
    assert calls.names() == ["live", "live", "cached", "quote"]
    assert harness.data.outputs["prices"] == {"eur": 1.0}
    assert calls.log[-1][1]["prices"] == {"eur": 1.0}
    assert harness.status is sf.WorkflowStatus.FINISHED


def test_a_final_failure_compensates_in_reverse_completion_order(url: str) -> None:
    calls = Calls()
    calls.fail = {"ship": 1}
    Order = dag.load(
        """
        name: Order
        steps:
          - {id: reserve, handler: reserve, compensate: release}
          - {id: charge, handler: charge, compensate: refund, depends_on: [reserve]}
          - {id: ship, handler: ship, depends_on: [charge]}
          - {id: notify, handler: notify, depends_on: [ship]}
        """,
        handlers=calls.handlers("reserve", "release", "charge", "refund", "ship", "notify"),
    )
    with Engine(url, [Order]) as engine:
        inst = engine.start(Order, id="order-1")
        assert calls.names() == ["reserve", "charge", "ship", "refund", "release"]
        assert inst.status is sf.WorkflowStatus.FAILED
        assert "'ship' ConnectionError: ship unavailable" in (inst.error or "")
        assert "'notify' skipped: 'ship' failed" in (inst.error or "")
        assert [c.step for c in inst.state.compensated] == ["charge", "reserve"]
        refund_inputs = calls.log[3][1]
        assert refund_inputs == {"input": {}, "reserve": "reserve", "charge": "charge"}
        again = engine.get("order-1")
        assert again.data.failed == {  # type: ignore[attr-defined]
            "ship": "ConnectionError: ship unavailable",
            "notify": "skipped: 'ship' failed",
        }


def test_a_step_rescued_by_its_fallback_is_compensated_too() -> None:
    calls = Calls()
    calls.fail = {"book": 1, "pay": 1}
    Trip = dag.load(
        """
        steps:
          - {id: hotel, handler: book, fallback: book_other, compensate: cancel}
          - {id: payment, handler: pay, depends_on: [hotel]}
        """,
        handlers=calls.handlers("book", "book_other", "cancel", "pay"),
    )
    harness = WorkflowHarness(Trip).start()
    assert calls.names() == ["book", "book_other", "pay", "cancel"]
    assert calls.log[-1][1] == {"input": {}, "hotel": "book_other"}
    assert harness.status is sf.WorkflowStatus.FAILED


def test_independent_branches_finish_before_the_compensation() -> None:
    calls = Calls()
    calls.fail = {"bad": 1}
    Wide = dag.load(
        """
        steps:
          - {id: bad, handler: bad}
          - {id: good, handler: good, compensate: undo_good}
          - {id: after_good, handler: after_good, depends_on: [good], compensate: undo_after}
        """,
        handlers=calls.handlers("bad", "good", "undo_good", "after_good", "undo_after"),
    )
    harness = WorkflowHarness(Wide).start()
    assert calls.names()[-2:] == ["undo_after", "undo_good"]
    assert set(calls.names()[:3]) == {"bad", "good", "after_good"}
    assert harness.status is sf.WorkflowStatus.FAILED


def test_a_retry_waits_its_turn_even_while_other_steps_start_theirs() -> None:
    calls = Calls()
    calls.fail = {"flaky": 1}
    Mixed = dag.load(
        """
        steps:
          - {id: a, handler: a}
          - {id: flaky, handler: flaky, retry: {max_attempts: 2, initial_interval: 10s}}
          - {id: c, handler: c, depends_on: [a]}
          - {id: d, handler: d, depends_on: [c]}
        """,
        handlers=calls.handlers("a", "flaky", "c", "d"),
    )
    harness = WorkflowHarness(Mixed).start()
    assert sorted(calls.names()) == ["a", "c", "d", "flaky"]  # c and d did not start it again
    assert harness.status is sf.WorkflowStatus.WAITING
    harness.advance(timedelta(seconds=10))
    assert calls.names().count("flaky") == 2 and harness.status is sf.WorkflowStatus.FINISHED


def test_cancel_with_compensate_undoes_the_completed_steps(url: str) -> None:
    calls = Calls()
    calls.fail = {"wait": 1}
    Slow = dag.load(
        """
        name: Slow
        steps:
          - {id: book, handler: book, compensate: unbook}
          - id: wait
            handler: wait
            depends_on: [book]
            retry: {max_attempts: 5, initial_interval: 1h}
        """,
        handlers=calls.handlers("book", "unbook", "wait"),
    )
    with Engine(url, [Slow]) as engine:
        assert engine.start(Slow, id="slow-1").status is sf.WorkflowStatus.WAITING
        inst = engine.cancel("slow-1", compensate=True)
    assert inst.status is sf.WorkflowStatus.CANCELLED
    assert calls.names() == ["book", "wait", "unbook"]
    assert calls.log[-1][1] == {"input": {}, "book": "book"}


def test_a_timeout_fails_the_attempt_and_the_fallback_takes_over() -> None:
    def slow(inputs: dict[str, Any]) -> str:
        time.sleep(1.0)
        return "slow"

    async def slow_async(inputs: dict[str, Any]) -> str:
        await asyncio.sleep(5)
        return "slow"

    Slow = dag.load(
        """
        steps:
          - {id: sync, handler: slow, timeout: 50ms, fallback: quick}
          - {id: async, handler: slow_async, timeout: 0.05, fallback: quick}
          - {id: plain, handler: slow_async, timeout: 0.05}
        """,
        handlers={"slow": slow, "slow_async": slow_async, "quick": lambda i: "quick"},
    )
    harness = WorkflowHarness(Slow).start()
    assert harness.data.outputs == {"sync": "quick", "async": "quick"}
    assert harness.data.failed == {
        "plain": "TimeoutError: step 'plain': handler did not finish within 0.05s"
    }
    assert harness.status is sf.WorkflowStatus.FAILED


def test_a_handler_output_that_is_not_json_fails_the_step_with_a_clear_error() -> None:
    Bad = dag.load("steps: [{id: a, handler: a}]", handlers={"a": lambda i: {1, 2}})
    harness = WorkflowHarness(Bad).start()
    assert harness.data.failed["a"].startswith("TypeError: step 'a': output is not JSON-ready")


# -- validation ---------------------------------------------------------------------------------


def problems_of(text: str, handlers: Any) -> list[str]:
    with pytest.raises(sf.DefinitionError) as caught:
        dag.load(text, handlers=handlers)
    return caught.value.issues


def test_every_problem_is_reported_at_once() -> None:
    issues = problems_of(
        """
        steps:
          - {id: a, handler: nope, fallback: gone}
          - {id: a, handler: f}
          - {id: b, handler: f, depends_on: [x]}
          - {id: c, handler: f, retry: {max_attempts: 0, backoff: linear, initial_interval: soon}}
          - {id: d, handler: f, timeout: 0, colour: red}
        """,
        {"f": print},
    )
    text = "\n".join(issues)
    assert "steps[0] ('a').handler: unknown handler 'nope'" in text
    assert "steps[0] ('a').fallback: unknown handler 'gone'" in text
    assert "steps[1]: duplicate id 'a' (also steps[0])" in text
    assert "steps[2] ('b').depends_on: unknown step id 'x'" in text
    assert "steps[3].retry.max_attempts: 0 is less than the minimum of 1" in text
    assert "steps[3].retry.backoff: 'linear' is not one of ['exponential', 'constant']" in text
    assert "steps[3].retry.initial_interval: 'soon' is not a duration" in text
    assert "steps[4] ('d').timeout: must be more than 0" in text
    assert "steps[4]: Additional properties are not allowed ('colour' was unexpected)" in text
    assert len(issues) == 9


def test_a_cycle_names_its_steps() -> None:
    issues = problems_of(
        """
        steps:
          - {id: a, handler: f, depends_on: [c]}
          - {id: b, handler: f, depends_on: [a]}
          - {id: c, handler: f, depends_on: [b]}
          - {id: d, handler: f, depends_on: [d]}
        """,
        {"f": print},
    )
    assert issues == [
        "<text>: cycle: a -> c -> b -> a (each depends on the one after it)",
        "<text>: cycle: d -> d (each depends on the one after it)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps: []", "steps: [] should be non-empty"),
        ("[1, 2]", "file: [1, 2] is not of type 'object'"),
        ("steps: [{id: input, handler: f}]", "'input' is reserved"),
        ("steps: [{id: 9lives, handler: f}]", "does not match"),
        ("steps: [{handler: f}]", "'id' is a required property"),
        ("steps: {a: 1}", "is not of type 'array'"),
        ("steps: [{id: a, handler: f}\n", "not valid YAML"),
        ("steps: [{id: a, handler: !!python/name:os.system}]", "not valid YAML"),
    ],
)
def test_malformed_files_are_refused_with_what_is_wrong(text: str, expected: str) -> None:
    assert any(expected in issue for issue in problems_of(text, {"f": print}))


def test_handlers_may_be_a_module_and_the_file_a_path(tmp_path: Path) -> None:
    import types

    module = types.SimpleNamespace(hello=lambda inputs: "hello")
    path = tmp_path / "hello.yaml"
    path.write_text("name: Hello\nsteps: [{id: hi, handler: hello}]\n")
    for source in (path, str(path)):
        Hello = dag.load(source, handlers=module)
        assert WorkflowHarness(Hello).start().data.outputs == {"hi": "hello"}
    with pytest.raises(sf.DefinitionError, match="cannot read the DAG file"):
        dag.load(tmp_path / "missing.yaml", handlers=module)


def test_data_outside_input_is_refused_before_anything_is_stored() -> None:
    One = dag.load("steps: [{id: a, handler: f, description: the only step}]", handlers={"f": str})
    with Engine("memory://", [One]) as engine:
        with pytest.raises(ValueError, match="night"):
            engine.start(One, {"night": 1}, id="one-1")
        assert engine.list() == []


def test_the_published_schema_is_the_one_shipped() -> None:
    published = json.loads((ROOT / "docs" / "dag.schema.json").read_text())
    assert published == dag.schema()


def test_an_engine_stores_nothing_for_a_definition_it_refuses() -> None:
    with Engine("memory://") as engine, pytest.raises(sf.DefinitionError):
        engine.register(dag.load("steps: [{id: a, handler: zzz}]", handlers={}))
    assert engine.list() == []


# -- the engine, stores and crashes -------------------------------------------------------------


def test_a_dag_runs_through_the_engine_on_every_store(url: str) -> None:
    calls = Calls()
    calls.fail = {"extract": 1}
    Etl = dag.load(
        """
        name: Etl
        steps:
          - {id: extract, handler: extract, retry: {max_attempts: 2, initial_interval: 1s}}
          - {id: clean, handler: clean, depends_on: [extract]}
          - {id: audit, handler: audit, depends_on: [extract]}
          - {id: load, handler: load, depends_on: [clean, audit]}
        """,
        handlers=calls.handlers("extract", "clean", "audit", "load"),
    )
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    with Engine(url, [Etl], clock=lambda: now[0]) as engine:
        inst = engine.start(Etl, {"input": {"day": 1}}, id="etl-1")
        assert inst.status is sf.WorkflowStatus.WAITING
        # Only the step whose dependencies settled has a thread; the diagram shows it there.
        assert [t.id for t in inst.state.threads] == ["_main_", "extract"]
        drawn = sf.to_mermaid(inst.data.definition(), inst.state)
        assert "body(arg)<br>▶ extract at extract" in drawn
        now[0] += timedelta(seconds=1)
        assert engine.tick() == 1
        done = engine.get("etl-1")
        assert done.status is sf.WorkflowStatus.FINISHED, done.error
        assert done.data.outputs == {  # type: ignore[attr-defined]
            "extract": "extract",
            "clean": "clean",
            "audit": "audit",
            "load": "load",
        }
        assert sorted(calls.names()) == sorted(["extract", "extract", "clean", "audit", "load"])
        assert "Go dag.step" in sf.to_mermaid(Etl().definition(), done.state)


class Crash(BaseException):
    """Stands in for the process dying in the middle of a handler."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'crash.db'}"


def test_a_crash_mid_dag_resumes_and_reruns_only_the_step_in_flight(durable_url: str) -> None:
    calls = Calls()
    crash = {"second": True}

    def second(inputs: dict[str, Any]) -> str:
        calls.log.append(("second", inputs))
        if crash["second"]:
            crash["second"] = False
            raise Crash()
        return "second"

    handlers = {**calls.handlers("first", "third"), "second": second}
    text = """
        name: Chain
        steps:
          - {id: first, handler: first}
          - {id: second, handler: second, depends_on: [first]}
          - {id: third, handler: third, depends_on: [second]}
    """
    url = durable_url
    with Engine(url, [dag.load(text, handlers=handlers)]) as engine, pytest.raises(Crash):
        engine.start("Chain", id="chain-1")
    later = datetime.now(UTC) + timedelta(minutes=5)  # the dead worker's lease lapsed
    Chain = dag.load(text, handlers=handlers)  # a new process loads the file again
    with Engine(url, [Chain], clock=lambda: later) as engine:
        assert engine.get("chain-1").data.outputs == {"first": "first"}  # type: ignore[attr-defined]
        engine.tick()
        inst = engine.get("chain-1")
    assert inst.status is sf.WorkflowStatus.FINISHED, inst.error
    assert calls.names() == ["first", "second", "second", "third"]
    assert inst.data.outputs == {"first": "first", "second": "second", "third": "third"}  # type: ignore[attr-defined]


# -- property: a crash at any checkpoint changes nothing in the end ------------------------------


class CheckpointCrash(Exception):
    """The checkpoint callback's stand-in for a process dying right after a save."""


@settings(max_examples=40, deadline=None)
@given(
    deps=st.lists(
        st.lists(st.integers(min_value=0, max_value=4), max_size=2), min_size=1, max_size=5
    ),
    failing=st.sets(st.integers(min_value=0, max_value=4), max_size=2),
    rescued=st.sets(st.integers(min_value=0, max_value=4), max_size=2),
    crash_at=st.integers(min_value=1, max_value=40),
)
def test_property_a_crash_at_any_checkpoint_changes_nothing_in_the_end(
    deps: list[list[int]], failing: set[int], rescued: set[int], crash_at: int
) -> None:
    lines = []
    for i, wanted in enumerate(deps):
        before = sorted({f"s{d}" for d in wanted if d < i})  # only earlier steps: no cycles
        extra = ", fallback: rescue" if i in rescued else ""
        lines.append(
            f"  - {{id: s{i}, handler: {'bad' if i in failing else 'good'},"
            f" depends_on: [{', '.join(before)}], compensate: undo{extra}}}"
        )
    handlers = {
        "good": lambda inputs: sorted(inputs),
        "rescue": lambda inputs: "rescued",
        "bad": lambda inputs: (_ for _ in ()).throw(ConnectionError("down")),
        "undo": lambda inputs: None,
    }
    Random = dag.load("steps:\n" + "\n".join(lines), handlers=handlers)

    def fresh() -> tuple[sf.WorkflowState, sf.State]:
        return Random(), sf.new_state("p-1", Random)

    def outcome(wf: Any, state: sf.State) -> tuple[Any, ...]:
        return (wf.outputs, wf.failed, state.status, [c.step for c in state.compensated])

    wf, state = fresh()
    sf.resume(wf, state)
    expected = outcome(wf, state)

    wf, state = fresh()
    saved = [(wf.model_dump_json(), state.model_dump_json())]

    def checkpoint(kind: sf.CheckpointType) -> None:
        saved.append((wf.model_dump_json(), state.model_dump_json()))
        if len(saved) == crash_at:
            raise CheckpointCrash()

    try:
        sf.resume(wf, state, checkpoint)
    except CheckpointCrash:
        data, text = saved[-1]
        wf, state = Random.model_validate_json(data), sf.load_state(text)
        sf.resume(wf, state)
    assert outcome(wf, state) == expected

"""``engine.inputs()``: every question a waiting instance asks a person, across the store,
served from an index committed in the same write as each state (memory, SQLite, PostgreSQL).
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import stmtflow as sf
from stmtflow.errors import ConflictError
from stmtflow.runtime import Engine
from stmtflow.stores import PendingInput, Record, Store, open_store
from stmtflow.stores import sqlite as sqlite_store
from stmtflow.stores._inputs import check_inputs
from stmtflow.stores._postgres_schema import SCHEMA_VERSION as POSTGRES_VERSION
from stmtflow.stores._sqlite_schema import SCHEMA_VERSION as SQLITE_VERSION
from stmtflow.testing import WorkflowHarness

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FAILING: set[str] = set()
"""Instance ids whose ``sync`` step fails (kept outside the data, which a failure rolls back)."""


class Expense(BaseModel):
    amount: int


class Claim(sf.WorkflowState):
    manager: str | None = "ana"
    amount: int = 0
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Ask(
                "review",
                Expense,
                self.on_form,
                prompt=lambda: f"Approve claim {sf.current_time():%H:%M}?",
                assignee=lambda: self.manager,
                timeout=timedelta(days=2),
            ),
            sf.Step(
                "sync",
                self.sync,
                retry=sf.RetryPolicy(max_attempts=1, on_exhausted="escalate"),
            ),
        )

    def on_form(self, form: Expense) -> None:
        self.amount = form.amount

    def sync(self) -> None:
        if sf.current_step().workflow_id in FAILING:
            raise ConnectionError("ledger unreachable")
        self.log.append("synced")


class Pair(sf.WorkflowState):
    """Two threads asking at once: a legal check and a budget check."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go("legal", sf.S(sf.Ask("legal_ok", Expense, prompt="Legal?", assignee="lex"))),
            sf.Ask("budget_ok", Expense, prompt="Budget?", assignee="bo"),
        )


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
    ]
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    if request.param == "nats":
        return str(request.getfixturevalue("nats_url"))
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inputs.db'}"
    return "memory://"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(url: str, clock: Clock) -> Iterator[Engine]:
    FAILING.clear()
    with Engine(url, workflows=[Claim, Pair], clock=clock) as eng:
        yield eng
    FAILING.clear()


def listed(engine: Engine, **filters: Any) -> list[tuple[str, str, str | None]]:
    return [(r.instance_id, r.event, r.assignee) for r in engine.inputs(**filters)]


def test_every_question_is_listed_with_prompt_assignee_schema_and_deadline(
    engine: Engine, clock: Clock
) -> None:
    engine.start(Claim, id="c-1")
    clock.now += timedelta(minutes=5)
    engine.start(Claim, {"manager": "bo"}, id="c-2")
    first, second = engine.inputs()
    assert first == PendingInput(
        instance_id="c-1",
        event="review.answer",
        thread_id=sf.MAIN_THREAD,
        prompt="Approve claim 09:00?",
        assignee="ana",
        input_schema=Expense.model_json_schema(),
        asked_at=START,
        deadline=START + timedelta(days=2),
        workflow="Claim",
    )
    assert (second.instance_id, second.assignee) == ("c-2", "bo")
    assert second.asked_at == START + timedelta(minutes=5)


def test_filters_by_assignee_and_workflow(engine: Engine) -> None:
    engine.start(Claim, id="c-1")
    engine.start(Claim, {"manager": "bo"}, id="c-2")
    engine.start(Claim, {"manager": None}, id="c-3")
    engine.start(Pair, id="p-1")
    assert listed(engine, assignee="bo") == [
        ("c-2", "review.answer", "bo"),
        ("p-1", "budget_ok.answer", "bo"),
    ]
    assert [r[0] for r in listed(engine, workflow="Claim")] == ["c-1", "c-2", "c-3"]
    assert listed(engine, workflow="Pair", assignee="lex") == [("p-1", "legal_ok.answer", "lex")]
    assert listed(engine, assignee="nobody") == [] and listed(engine, workflow="Nope") == []
    assert ("c-3", "review.answer", None) in listed(engine)


def test_each_asking_thread_is_listed_and_answered_by_its_thread_id(engine: Engine) -> None:
    engine.start(Pair, id="p-1")
    rows = {r.event: r.thread_id for r in engine.inputs()}
    assert rows == {"legal_ok.answer": "legal", "budget_ok.answer": sf.MAIN_THREAD}
    engine.send("p-1", "legal_ok.answer", {"amount": 1}, thread_id="legal")
    assert listed(engine) == [("p-1", "budget_ok.answer", "bo")]


def test_an_answered_question_leaves_the_list_and_a_refused_one_stays(engine: Engine) -> None:
    engine.start(Claim, id="c-1")
    with pytest.raises(sf.CallbackInputError):
        engine.send("c-1", "review.answer", {"amount": "lots"})
    assert listed(engine) == [("c-1", "review.answer", "ana")]
    engine.send("c-1", "review.answer", {"amount": 12})
    assert engine.inputs() == [] and engine.get("c-1").status is sf.WorkflowStatus.FINISHED


def test_a_timed_out_question_leaves_the_list(engine: Engine, clock: Clock) -> None:
    engine.start(Claim, id="c-1")
    clock.now += timedelta(days=2)
    assert engine.tick() == 1
    assert engine.inputs() == [] and engine.get("c-1").data.amount == 0  # type: ignore[attr-defined]


def test_a_cancelled_instance_asks_nothing(engine: Engine) -> None:
    engine.start(Claim, id="c-1")
    engine.cancel("c-1")
    assert engine.inputs() == []


def test_an_escalated_step_is_listed_until_an_operator_answers(engine: Engine) -> None:
    FAILING.add("c-1")
    engine.start(Claim, id="c-1")
    engine.send("c-1", "review.answer", {"amount": 3})
    (row,) = engine.inputs()
    assert (row.event, row.assignee, row.deadline) == ("sync.escalation", None, None)
    assert row.prompt == (
        "step 'sync' failed after 1 attempt(s): ConnectionError: ledger unreachable; "
        "retry, skip or fail it?"
    )
    assert row.input_schema["required"] == ["action"]
    FAILING.clear()
    engine.send("c-1", "sync.escalation", {"action": "retry"})
    assert engine.inputs() == [] and engine.get("c-1").status is sf.WorkflowStatus.FINISHED


def test_an_operator_failing_the_step_removes_the_question(engine: Engine) -> None:
    FAILING.add("c-1")
    engine.start(Claim, id="c-1")
    engine.send("c-1", "review.answer", {"amount": 3})
    engine.send("c-1", "sync.escalation", {"action": "fail"})
    assert engine.inputs() == [] and engine.get("c-1").status is sf.WorkflowStatus.FAILED


def test_inputs_read_no_state(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(3):
        engine.start(Claim, id=f"c-{n}")

    def no(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("inputs() must not read instance records")

    monkeypatch.setattr(engine.store, "get", no)
    monkeypatch.setattr(engine.store, "list", no)
    assert len(engine.inputs()) == 3


# -- the store contract ------------------------------------------------------------------------


def row(id: str, event: str = "ask.answer", **changes: Any) -> PendingInput:
    values: dict[str, Any] = {
        "instance_id": id,
        "event": event,
        "thread_id": sf.MAIN_THREAD,
        "prompt": "?",
        "assignee": "ana",
        "input_schema": {"type": "object"},
        "asked_at": START,
        "deadline": None,
        "workflow": "W",
    }
    values.update(changes)
    return PendingInput(**values)


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with open_store(url) as opened:
        yield opened


def created(store: Store, id: str = "a") -> Record:
    return store.create(Record(id=id, workflow="W", data="{}", state="{}"))


def test_a_write_replaces_the_set_and_none_leaves_it(store: Store) -> None:
    rec = created(store)
    assert store.inputs() == []
    rec = store.update(rec, expected_version=1, inputs=[row("a"), row("a", "b.answer")])
    assert [r.event for r in store.inputs()] == ["ask.answer", "b.answer"]
    rec = store.update(rec, expected_version=2)
    assert len(store.inputs()) == 2
    rec = store.update(rec, expected_version=3, inputs=[row("a", "c.answer", assignee=None)])
    assert store.inputs() == [row("a", "c.answer", assignee=None)]
    store.update(rec, expected_version=4, inputs=[])
    assert store.inputs() == []


def test_rows_come_back_as_written(store: Store) -> None:
    rec = created(store)
    written = row(
        "a",
        deadline=START + timedelta(hours=3, microseconds=7),
        input_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
        prompt="Ünïcode — fine?",
    )
    store.update(rec, expected_version=1, inputs=[written])
    assert store.inputs() == [written]
    assert store.inputs(assignee="ana", workflow="W") == [written]


def test_an_unleased_write_carries_inputs_too(store: Store) -> None:
    rec = created(store)
    store.update_free(rec, expected_version=1, now=START, inputs=[row("a")])
    assert store.inputs() == [row("a")]


def test_a_refused_write_leaves_the_rows(store: Store) -> None:
    rec = created(store)
    rec = store.update(rec, expected_version=1, inputs=[row("a")])
    with pytest.raises(ConflictError):
        store.update(rec, expected_version=1, inputs=[])
    with pytest.raises(ConflictError):
        store.update_free(rec, expected_version=1, now=START, inputs=[])
    assert store.inputs() == [row("a")]


@pytest.mark.parametrize(
    "bad",
    [
        [row("other")],
        [row("a"), row("a")],
        [row("a", asked_at=datetime(2026, 1, 1))],
        ["not a row"],
    ],
)
def test_bad_rows_are_refused_and_nothing_is_written(store: Store, bad: list[Any]) -> None:
    rec = created(store)
    with pytest.raises(ValueError, match="record 'a'"):
        store.update(rec, expected_version=1, inputs=bad)
    assert store.get("a").version == 1 and store.inputs() == []


def test_listing_order_is_oldest_question_first(store: Store) -> None:
    for id, minutes in (("a", 5), ("b", 1), ("c", 3)):
        rec = created(store, id)
        store.update(
            rec, expected_version=1, inputs=[row(id, asked_at=START + timedelta(minutes=minutes))]
        )
    assert [r.instance_id for r in store.inputs()] == ["b", "c", "a"]


def test_sqlite_writes_state_and_rows_in_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        rec = created(store)

        def broken(*args: Any) -> None:
            raise RuntimeError("disk gone")

        monkeypatch.setattr(sqlite_store, "_replace_inputs", broken)
        changed = Record(id="a", workflow="W", data='{"n": 1}', state="{}")
        with pytest.raises(RuntimeError, match="disk gone"):
            store.update(changed, expected_version=rec.version, inputs=[row("a")])
        assert store.get("a").version == 1 and store.get("a").data == "{}"


def test_sqlite_files_of_schema_3_and_4_gain_the_index(tmp_path: Path) -> None:
    for old in (3, 4):
        path = tmp_path / f"v{old}.db"
        open_store(f"sqlite:///{path}").close()
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE stmtflow_inputs")
            conn.execute("UPDATE stmtflow_meta SET value = ? WHERE key = 'schema_version'", (old,))
        with open_store(f"sqlite:///{path}") as store:
            rec = created(store)
            store.update(rec, expected_version=1, inputs=[row("a")])
            assert store.inputs() == [row("a")]
        with sqlite3.connect(path) as conn:
            (version,) = conn.execute(
                "SELECT value FROM stmtflow_meta WHERE key = 'schema_version'"
            ).fetchone()
        assert version == str(SQLITE_VERSION)  # brought up to this release's schema


def test_sqlite_deleting_an_instance_deletes_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with open_store(f"sqlite:///{path}") as store:
        store.update(created(store), expected_version=1, inputs=[row("a")])
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM stmtflow_instances WHERE id = 'a'")
    with open_store(f"sqlite:///{path}") as store:
        assert store.inputs() == []


@pytest.mark.postgres
def test_postgres_schema_1_gains_the_index(pg_url: str) -> None:
    import psycopg

    open_store(pg_url).close()
    schema = pg_url.rsplit("schema=", 1)[1]
    base = pg_url.split("?")[0]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("DROP TABLE stmtflow_inputs")
        conn.execute("UPDATE stmtflow_meta SET value = '1' WHERE key = 'schema_version'")
    with open_store(pg_url) as store:
        store.update(created(store), expected_version=1, inputs=[row("a")])
        assert store.inputs() == [row("a")]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        version = conn.execute("SELECT value FROM stmtflow_meta").fetchone()
    assert version == (str(POSTGRES_VERSION),)


@pytest.mark.postgres
def test_postgres_writes_state_and_rows_in_one_commit(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stmtflow.stores import postgres

    with open_store(pg_url) as store:
        rec = created(store)

        def broken(*args: Any) -> Any:
            raise RuntimeError("lost the connection")

        monkeypatch.setattr(postgres, "input_params", broken)
        changed = Record(id="a", workflow="W", data='{"n": 1}', state="{}")
        with pytest.raises(RuntimeError, match="lost the connection"):
            store.update(changed, expected_version=rec.version, inputs=[row("a")])
        assert store.get("a").version == 1 and store.get("a").data == "{}"


def test_check_inputs_accepts_a_good_set() -> None:
    assert check_inputs("a", [row("a"), row("a", "b.answer")]) == (row("a"), row("a", "b.answer"))


# -- the index always says what the states say -------------------------------------------------

ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["start", "answer", "bad", "wait", "retry", "skip", "cancel"]),
        st.integers(0, 3),
    ),
    max_size=14,
)


def implied(engine: Engine) -> list[tuple[str, str, str, str | None]]:
    """The questions the stored states imply, by a scan of every instance."""
    found = []
    for inst in engine.list():
        for event in engine.pending(inst.id):
            if event.prompt is not None:
                found.append((inst.id, event.name, event.thread_id, event.assignee))
    return sorted(found)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=20, deadline=None)
@given(actions=ACTIONS)
def test_the_index_matches_a_scan_of_the_states(kind: str, actions: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_index("memory://" if kind == "memory" else f"sqlite:///{tmp}/p.db", actions)


@pytest.mark.nats
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=ACTIONS)
def test_the_nats_index_matches_a_scan_of_the_states(
    nats_url_factory: Callable[[], str], actions: list[tuple[str, int]]
) -> None:
    check_index(nats_url_factory(), actions)


def check_index(url: str, actions: list[tuple[str, int]]) -> None:
    clock = Clock()
    FAILING.clear()
    with Engine(url, workflows=[Claim], clock=clock) as engine:
        for action, n in actions:
            act(engine, clock, action, f"c-{n}", n)
            got = [(r.instance_id, r.event, r.thread_id, r.assignee) for r in engine.inputs()]
            assert sorted(got) == implied(engine)
    FAILING.clear()


def act(engine: Engine, clock: Clock, action: str, id: str, n: int) -> None:
    """One random move on instance ``id``; refusals (nothing to answer) are part of the game."""
    try:
        if action == "start":
            if n % 2:
                FAILING.add(id)
            engine.start(Claim, {"manager": ["ana", "bo", None][n % 3]}, id=id)
        elif action == "answer":
            engine.send(id, "review.answer", {"amount": n})
        elif action == "bad":
            engine.send(id, "review.answer", {"amount": "n"})
        elif action == "wait":
            clock.now += timedelta(days=1)
            engine.tick()
        elif action in ("retry", "skip"):
            engine.send(id, "sync.escalation", {"action": action})
        else:
            engine.cancel(id)
    except (sf.CallbackError, sf.NotFound):
        pass


def test_a_harness_given_a_state_lists_its_questions_at_once() -> None:
    wf, state = Claim(), sf.new_state("c-9", Claim)
    sf.resume(wf, state, now=START)
    harness = WorkflowHarness(wf, state=state, start=START)
    assert [(r.instance_id, r.event, r.assignee) for r in harness.inputs()] == [
        ("c-9", "review.answer", "ana")
    ]
    harness.send("review.answer", {"amount": 5})
    assert harness.inputs() == []


def test_create_stores_rows_with_the_record(store: Store) -> None:
    store.create(Record(id="a", workflow="W", data="{}", state="{}"), inputs=[row("a")])
    assert store.inputs() == [row("a")]
    with pytest.raises(ConflictError):
        store.create(Record(id="a", workflow="W", data="{}", state="{}"), inputs=[])
    assert store.inputs() == [row("a")]
    with pytest.raises(ValueError, match="record 'b'"):
        store.create(Record(id="b", workflow="W", data="{}", state="{}"), inputs=[row("a")])
    with pytest.raises(sf.NotFound):
        store.get("b")


@pytest.mark.parametrize(
    ("action", "status", "log"),
    [
        ("retry", sf.WorkflowStatus.FINISHED, ["synced"]),
        ("skip", sf.WorkflowStatus.FINISHED, []),
        ("fail", sf.WorkflowStatus.FAILED, []),
    ],
)
def test_each_answer_to_an_escalation_on_every_store(
    engine: Engine, action: str, status: sf.WorkflowStatus, log: list[str]
) -> None:
    FAILING.add("c-1")
    engine.start(Claim, id="c-1")
    engine.send("c-1", "review.answer", {"amount": 3})
    waiting = engine.get("c-1")
    assert waiting.status is sf.WorkflowStatus.WAITING and waiting.wake_at is None
    assert waiting.error == "_main_/sync (attempt 1): ConnectionError: ledger unreachable"
    FAILING.clear()
    assert engine.send("c-1", "sync.escalation", {"action": action}) == action
    done = engine.get("c-1")
    assert done.status is status and done.data.log == log  # type: ignore[attr-defined]
    assert engine.inputs() == []

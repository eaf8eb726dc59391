"""`Engine` over every store: start, send, tick (timers and retries), cancel, restart, pending.

Each test runs on the memory, SQLite and PostgreSQL stores (PostgreSQL through the shared
``pg_url`` fixture in conftest.py, skipped when no server is reachable).

A refused call must leave the stored record as it was. ``cancel`` and ``restart`` claim the
record first, which bumps its fencing token (that is what a claim is), so "unchanged" means every
field but ``fence`` equal, with the lease released. (A refused ``send`` takes no lease at all:
tests/test_engine_send.py checks it leaves the fence alone too.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, Field

import stmtflow as sf
from stmtflow.runtime import Engine
from stmtflow.stores import Record

CALLS: dict[str, list[Any]] = {}
"""What ran outside the workflow data (which a failed step's rollback would erase)."""


def called(kind: str, value: Any) -> None:
    CALLS.setdefault(kind, []).append(value)


class Recorder(sf.BaseHandler):
    """An event armed outside: records its setup and teardown."""

    def setup(self, req: sf.CallbackRequest) -> str:
        called("setup", req.name)
        return "armed"

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        return input

    def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        called("teardown", (req.name, handled))


class Decision(BaseModel):
    approver: str = Field(min_length=1)


class Approval(sf.WorkflowState):
    amount: int
    log: list[str] = Field(default_factory=list)

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("submit", self.submit),
            sf.Wait(
                "review",
                sf.OnEvent("approve", self.on_approve),
                sf.On("webhook", Recorder()),
                sf.On("expire", sf.Timer(hours=1), sf.Step("expired", self.expired)),
            ),
            sf.Step("done", lambda: self.log.append("done")),
        )

    def submit(self) -> None:
        called("submit", self.amount)
        self.log.append("submit")

    def expired(self) -> None:
        self.log.append("expired")

    def on_approve(self, decision: Decision) -> str:
        if decision.approver == "mallory":
            raise PermissionError("mallory may not approve")
        self.log.append(f"approved by {decision.approver}")
        return f"ok {decision.approver}"


class Flaky(sf.WorkflowState):
    """A step that fails on its first ``failures`` attempts (and records its keys)."""

    failures: int = 2
    key: str = ""

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("charge", self.charge))

    def charge(self) -> None:
        info = sf.current_step()
        called("key", info.key)
        if CALLS.get("fixed") is None and info.attempt <= self.failures:
            raise RuntimeError(f"card declined (attempt {info.attempt})")
        self.key = info.key


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
    ]
)
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
    elif request.param == "redis":
        url = request.getfixturevalue("redis_url")
    elif request.param == "nats":
        url = request.getfixturevalue("nats_url")
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'engine.db'}"
    else:
        url = "memory://"
    with Engine(url, workflows=[Approval, Flaky]) as eng:
        yield eng


def later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


def assert_unchanged(before: Record, after: Record) -> None:
    assert after.lease_owner is None
    assert dataclasses.replace(after, fence=before.fence) == before


# -- start ------------------------------------------------------------------------------------


def test_start_runs_until_blocked(engine: Engine) -> None:
    inst = engine.start(Approval, {"amount": 5}, id="a-1")
    assert inst.status is sf.WorkflowStatus.WAITING
    assert inst.data.model_dump()["log"] == ["submit"]
    assert inst.state.threads[0].cur_step == "review"
    assert engine.get("a-1").version == inst.version


def test_start_is_idempotent_by_id(engine: Engine) -> None:
    first = engine.start(Approval, {"amount": 5}, id="a-1")
    second = engine.start(Approval, {"amount": 99}, id="a-1")
    assert CALLS["submit"] == [5]
    assert (second.version, second.data, second.state) == (first.version, first.data, first.state)
    assert [i.id for i in engine.list()] == ["a-1"]


def test_start_with_invalid_data_stores_nothing(engine: Engine) -> None:
    with pytest.raises(ValueError, match="amount"):
        engine.start(Approval, {"amount": "lots"}, id="a-1")
    assert engine.store.list() == []
    assert "submit" not in CALLS


def test_start_of_an_unregistered_type_is_refused(engine: Engine) -> None:
    with pytest.raises(sf.StmtflowError, match="not registered"):
        engine.start("Nope", id="a-1")
    assert engine.store.list() == []


# -- send -------------------------------------------------------------------------------------


def test_send_returns_the_handler_output_and_runs_on(engine: Engine) -> None:
    engine.start(Approval, {"amount": 5}, id="a-1")
    assert engine.send("a-1", "approve", {"approver": "grace"}) == "ok grace"
    inst = engine.get("a-1")
    assert inst.status is sf.WorkflowStatus.FINISHED
    assert inst.data.model_dump()["log"] == ["submit", "approved by grace", "done"]
    assert CALLS["teardown"] == [("webhook", False)]


@pytest.mark.parametrize(
    ("event", "payload", "thread", "error"),
    [
        ("nope", None, None, sf.UnknownCallback),
        ("approve", {"approver": ""}, None, sf.CallbackInputError),
        ("approve", {"who": "grace"}, None, sf.CallbackInputError),
        ("approve", {"approver": "grace"}, "ghost", sf.UnknownCallback),
        ("approve", {"approver": "mallory"}, None, sf.HandlerError),
    ],
    ids=["unknown-event", "bad-input", "missing-field", "unknown-thread", "handler-raises"],
)
def test_refused_callbacks_change_nothing(
    engine: Engine, event: str, payload: Any, thread: str | None, error: type[Exception]
) -> None:
    engine.start(Approval, {"amount": 5}, id="a-1")
    before = engine.store.get("a-1")
    with pytest.raises(error):
        engine.send("a-1", event, payload, thread_id=thread)
    assert_unchanged(before, engine.store.get("a-1"))


def test_send_to_an_unknown_id_or_a_finished_instance(engine: Engine) -> None:
    with pytest.raises(sf.NotFound):
        engine.send("ghost", "approve", {"approver": "grace"})
    engine.start(Approval, {"amount": 5}, id="a-1")
    engine.send("a-1", "approve", {"approver": "grace"})
    before = engine.store.get("a-1")
    with pytest.raises(sf.WorkflowFinished):
        engine.send("a-1", "approve", {"approver": "grace"})
    assert_unchanged(before, engine.store.get("a-1"))


# -- pending and timers -----------------------------------------------------------------------


def test_pending_lists_input_schemas_and_deadlines(engine: Engine) -> None:
    start = datetime.now(UTC)
    engine.start(Approval, {"amount": 5}, id="a-1")
    events = {e.name: e for e in engine.pending("a-1")}
    assert list(events) == ["approve", "webhook", "expire"]
    schema = events["approve"].input_schema
    assert schema is not None and schema["required"] == ["approver"]
    assert events["webhook"].type == "Recorder" and events["webhook"].input_schema is None
    deadline = events["expire"].deadline
    assert deadline is not None
    assert start + timedelta(hours=1) <= deadline <= datetime.now(UTC) + timedelta(hours=1)
    assert engine.get("a-1").wake_at == deadline
    assert all(e.thread_id == sf.MAIN_THREAD for e in events.values())


def test_tick_fires_due_timers_only(engine: Engine) -> None:
    engine.start(Approval, {"amount": 5}, id="a-1")
    assert engine.tick(now=later(minutes=30)) == 0
    assert engine.get("a-1").status is sf.WorkflowStatus.WAITING
    assert engine.tick(now=later(hours=2)) == 1
    inst = engine.get("a-1")
    assert inst.status is sf.WorkflowStatus.FINISHED
    assert inst.data.model_dump()["log"] == ["submit", "expired", "done"]
    assert CALLS["teardown"] == [("webhook", False)]
    assert engine.pending("a-1") == []


STORES: list[Any] = []
"""The store `Napper.second` reads its own record from."""


class Napper(sf.WorkflowState):
    """A step, a 0 s sleep, and a step that reads its own stored record."""

    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("first", self.first),
            sf.Sleep("nap", timedelta(0)),
            sf.Step("second", self.second),
        )

    def first(self) -> None:
        self.log = [*self.log, "first"]

    def second(self) -> None:
        stored = STORES[0].get("n-1")
        called("seen by second", (stored.data, stored.status))
        self.log = [*self.log, "second"]


def test_a_sleep_costs_no_write_of_its_own_and_steps_still_run_on_durable_progress(
    engine: Engine,
) -> None:
    # Arming and firing the built-in Timer touch nothing outside data and state, so the
    # runtime does not write before them; it still writes before every step.
    STORES[:] = [engine.store]
    naps = Engine(engine.store, workflows=[Napper])
    naps.start(Napper, id="n-1")
    stored = engine.store.get("n-1")
    # Created, then one write holding the step and the armed timer together.
    assert stored.version == 2 and stored.status == "waiting" and stored.wake_at is not None
    assert naps.tick(now=later(seconds=1)) == 1
    # Before "second" ran, its predecessor's progress (the timer fired) was stored.
    assert CALLS["seen by second"] == [('{"log":["first"]}', "resuming")]
    assert naps.get("n-1").data.log == ["first", "second"]  # type: ignore[attr-defined]


# -- retries, failure, restart ----------------------------------------------------------------


def test_a_failing_step_is_retried_when_due_with_a_stable_key(engine: Engine) -> None:
    inst = engine.start(Flaky, id="f-1")
    thread = inst.state.threads[0]
    assert (inst.status, thread.attempt) == (sf.WorkflowStatus.WAITING, 1)
    assert thread.retry_at is not None and inst.wake_at == thread.retry_at
    assert "attempt 1" in (thread.last_error or "")

    assert engine.tick(now=thread.retry_at - timedelta(milliseconds=1)) == 0
    assert engine.tick(now=thread.retry_at) == 1
    inst = engine.get("f-1")
    thread = inst.state.threads[0]
    assert thread.attempt == 2 and thread.retry_at is not None
    assert inst.wake_at == thread.retry_at

    assert engine.tick(now=thread.retry_at + timedelta(seconds=1)) == 1
    inst = engine.get("f-1")
    assert inst.status is sf.WorkflowStatus.FINISHED
    keys = CALLS["key"]
    assert len(keys) == 3 and len(set(keys)) == 1
    assert inst.data.model_dump()["key"] == keys[0]


def test_exhausted_retries_fail_with_the_error_kept_then_restart(engine: Engine) -> None:
    engine.start(Flaky, {"failures": 10}, id="f-1")
    for hours in range(1, 5):
        engine.tick(now=later(hours=hours))
    inst = engine.get("f-1")
    assert inst.status is sf.WorkflowStatus.FAILED
    assert inst.state.error is not None and "card declined (attempt 3)" in inst.state.error
    assert inst.error == inst.state.error
    assert inst.wake_at is None
    assert engine.tick(now=later(days=1)) == 0

    CALLS["fixed"] = [True]
    inst = engine.restart("f-1")
    assert inst.status is sf.WorkflowStatus.FINISHED
    assert len(set(CALLS["key"])) == 1


def test_restart_refuses_an_instance_that_did_not_fail(engine: Engine) -> None:
    engine.start(Approval, {"amount": 5}, id="a-1")
    before = engine.store.get("a-1")
    with pytest.raises(sf.StmtflowError, match="not failed"):
        engine.restart("a-1")
    assert_unchanged(before, engine.store.get("a-1"))


# -- cancel, get, list ------------------------------------------------------------------------


def test_cancel_tears_down_pending_events(engine: Engine) -> None:
    engine.start(Approval, {"amount": 5}, id="a-1")
    assert CALLS["setup"] == ["webhook"]
    inst = engine.cancel("a-1")
    assert inst.status is sf.WorkflowStatus.CANCELLED
    assert CALLS["teardown"] == [("webhook", False)]
    assert engine.pending("a-1") == []
    assert engine.tick(now=later(hours=2)) == 0
    with pytest.raises(sf.WorkflowFinished):
        engine.cancel("a-1")


def test_get_and_list(engine: Engine) -> None:
    with pytest.raises(sf.NotFound):
        engine.get("ghost")
    engine.start(Approval, {"amount": 1}, id="a-1")
    engine.start(Approval, {"amount": 2}, id="a-2")
    engine.send("a-2", "approve", {"approver": "grace"})
    engine.start(Flaky, {"failures": 0}, id="f-1")
    assert [i.id for i in engine.list()] == ["a-1", "a-2", "f-1"]
    assert [i.id for i in engine.list(status="finished")] == ["a-2", "f-1"]
    assert [i.id for i in engine.list(workflow="Flaky")] == ["f-1"]
    with pytest.raises(ValueError, match="bogus"):
        engine.list(status="bogus")


# -- teardown retries and worker resilience ---------------------------------------------------


class Unplug(sf.BaseHandler):
    """A webhook whose first teardown fails (the remote side was down)."""

    def setup(self, req: sf.CallbackRequest) -> str:
        return "hook-1"

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        return input

    def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        called("teardown", (req.name, handled))
        if len(CALLS["teardown"]) == 1:
            raise ConnectionError("webhook service unavailable")


class Notify(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Wait("answer", sf.On("hook", Unplug()), sf.OnEvent("done", lambda: None)))


def test_a_failed_teardown_of_a_finished_instance_is_retried_by_tick(engine: Engine) -> None:
    engine.start(Notify, id="n-1")
    engine.send("n-1", "done")
    inst = engine.get("n-1")
    assert inst.status is sf.WorkflowStatus.FINISHED
    assert [e.status for e in inst.state.teardowns] == [sf.WaitEventStatus.TEARDOWN_ERROR]
    assert inst.wake_at is not None  # it needs the engine again, though it ended

    assert engine.tick(now=inst.wake_at + timedelta(seconds=1)) == 0  # nothing fired ...
    inst = engine.get("n-1")
    assert inst.state.teardowns == [] and inst.wake_at is None  # ... but the teardown ran
    assert CALLS["teardown"] == [("hook", False), ("hook", False)]


class Flappy(sf.BaseHandler):
    """An event armed outside whose setup fails the first time (the outside service was down)."""

    def setup(self, req: sf.CallbackRequest) -> str:
        called("setup", req.name)
        if len(CALLS["setup"]) == 1:
            raise ConnectionError("webhook service unreachable")
        return "armed"

    def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        return input


class Subscribe(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(
            sf.Wait("hooked", sf.On("later", sf.Timer(hours=2)), sf.On("hook", Flappy())),
        )


def test_a_failed_setup_is_retried_by_tick_after_the_backoff(engine: Engine) -> None:
    engine.register(Subscribe)
    inst = engine.start(Subscribe, id="s-1")
    timer, hook = inst.state.threads[0].wait_events
    assert hook.status is sf.WaitEventStatus.SETUP_ERROR and "unreachable" in (hook.error or "")
    assert timer.status is sf.WaitEventStatus.SETUP
    # The timer is due in two hours, yet the failed setup brings the instance back sooner.
    assert inst.wake_at is not None and inst.wake_at < later(seconds=engine.error_backoff.seconds)

    assert engine.tick(now=inst.wake_at + timedelta(seconds=1)) == 0  # nothing fired ...
    inst = engine.get("s-1")
    timer, hook = inst.state.threads[0].wait_events
    assert hook.status is sf.WaitEventStatus.SETUP and hook.req.setup_data == "armed"  # ... set up
    assert inst.wake_at == sf.Timer.deadline(timer.req)  # now only the timer is due
    assert CALLS["setup"] == ["hook", "hook"]


class Outage:
    """A store whose first claim fails as if the database went away (then recovers)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def claim_due(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise OSError("connection to the database lost")
        return self.store.claim_due(*args, **kwargs)


def test_a_worker_survives_a_database_outage(engine: Engine) -> None:
    engine.start(Flaky, {"failures": 1}, id="f-1")  # failed once: a retry is due in ~1 s
    worker = Engine(Outage(engine.store), workflows=[Flaky])  # type: ignore[arg-type]
    stop = __import__("threading").Event()

    def until_done(stats: Any) -> None:
        if worker.get("f-1").status is sf.WorkflowStatus.FINISHED:
            stop.set()

    timer = __import__("threading").Timer(10, stop.set)  # a safety net, not the expectation
    timer.start()
    try:
        stats = worker.run_worker(stop=stop, poll_interval=0.05, on_tick=until_done)
    finally:
        timer.cancel()
    assert worker.get("f-1").status is sf.WorkflowStatus.FINISHED
    assert stats.failed >= 1 and "connection to the database lost" in (stats.last_error or "")

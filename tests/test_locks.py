"""`Lock` on every store: mutual exclusion across instances, a limit of several slots, arrival
order, release on every way out of the body, a key computed from the data, clear errors for bad
definitions and for drivers that cannot lock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_urls import EVERY_STORE, HISTORY_STORES, store_url

import stmtflow as sf
from stmtflow.errors import ConflictError, DefinitionError, ExecutionError, StmtflowError
from stmtflow.runtime import Engine
from stmtflow.stores import Batch, Record, open_store
from stmtflow.stores._locks import LockClaim

LOCK_STORES = EVERY_STORE


class Pay(sf.WorkflowState):
    """Holds the lock of its account until it is told to go on (or fails, or is cancelled)."""

    account: str = "acct-1"
    fail: bool = False
    entered: bool = False
    left: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Lock(
                "pay",
                self.key,
                sf.Step("enter", self.enter),
                sf.Wait("hold", sf.OnEvent("go", self.go)),
                sf.Step("leave", self.leave, retry=sf.RetryPolicy(max_attempts=1)),
            ),
            sf.Step("after", lambda: None),
        )

    def key(self) -> str:
        return f"account:{self.account}"

    def enter(self) -> None:
        self.entered = True

    def go(self) -> None:
        pass

    def leave(self) -> None:
        if self.fail:
            raise ValueError("card declined")
        self.left = True


class Pair(sf.WorkflowState):
    """A lock of two slots on one fixed key."""

    entered: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Lock(
                "slot",
                "printer",
                sf.Step("enter", self.enter),
                sf.Wait("hold", sf.OnEvent("go", lambda: None)),
                limit=2,
            )
        )

    def enter(self) -> None:
        self.entered = True


class Threads(sf.WorkflowState):
    """A thread takes the lock and ends in it: its end releases the slot."""

    entered: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go(
                "worker",
                sf.Lock(
                    "t",
                    "shared",
                    sf.Step("enter", self.enter),
                    sf.Wait("hold", sf.OnEvent("go", lambda: None)),
                    sf.Return(),
                ),
            ),
            sf.Wait("rest", sf.OnEvent("done", lambda: None)),
        )

    def enter(self) -> None:
        self.entered = True


@pytest.fixture(params=LOCK_STORES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = store_url(request, tmp_path, request.param, "locks.db")
    with Engine(url, workflows=[Pay, Pair, Threads]) as engine:
        yield engine


def settle(engine: Engine) -> None:
    """Run what is due (a grant makes its waiter due), a few rounds: each tick runs the
    instances due when it claims, which may grant the next waiter."""
    for _ in range(8):
        engine.tick()


def entered(engine: Engine, id: str) -> bool:
    return bool(engine.get(id).data.entered)  # type: ignore[attr-defined]


def start(engine: Engine, workflow: Any, ids: list[str], **data: Any) -> None:
    for id in ids:
        engine.start(workflow, data, id=id)
        settle(engine)


def test_one_holder_at_a_time_and_waiters_in_arrival_order(engine: Engine) -> None:
    start(engine, Pay, ["a", "b", "c"])
    assert [entered(engine, i) for i in "abc"] == [True, False, False]
    engine.send("a", "go", None)
    settle(engine)
    assert engine.get("a").status == "finished"
    assert [entered(engine, i) for i in "bc"] == [True, False]  # b came before c
    engine.send("b", "go", None)
    settle(engine)
    assert entered(engine, "c")


def test_other_keys_do_not_wait(engine: Engine) -> None:
    start(engine, Pay, ["a"], account="1")
    start(engine, Pay, ["b"], account="2")  # the key is computed from the data
    assert entered(engine, "a") and entered(engine, "b")


def test_a_limit_of_two_slots(engine: Engine) -> None:
    start(engine, Pair, ["a", "b", "c"])
    assert [entered(engine, i) for i in "abc"] == [True, True, False]
    engine.send("b", "go", None)
    settle(engine)
    assert entered(engine, "c")


def test_a_failed_instance_releases(engine: Engine) -> None:
    start(engine, Pay, ["a"], fail=True)
    start(engine, Pay, ["b"])
    engine.send("a", "go", None)
    settle(engine)
    assert engine.get("a").status == "failed"
    assert entered(engine, "b")


def test_a_cancelled_holder_and_a_cancelled_waiter_release(engine: Engine) -> None:
    start(engine, Pay, ["a", "b", "c"])
    engine.cancel("b")  # a waiter leaves the queue
    engine.cancel("a")  # the holder's slot goes to the next waiter still there
    settle(engine)
    assert not entered(engine, "b")
    assert entered(engine, "c")


def test_a_thread_that_ends_in_the_body_releases(engine: Engine) -> None:
    start(engine, Threads, ["a", "b"])
    assert [entered(engine, i) for i in "ab"] == [True, False]
    engine.send("a", "go", None)
    settle(engine)
    assert engine.get("a").status == "waiting"  # the instance goes on without the thread
    assert entered(engine, "b")


def test_plain_resume_says_a_runtime_is_needed() -> None:
    wf = Pay()
    with pytest.raises(ExecutionError, match=r"needs a runtime.*stmtflow\.Engine"):
        sf.resume(wf, sf.new_state("p-1", "Pay"))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"key": ""}, "key must be a non-empty string"),
        ({"key": 3}, "key must be a non-empty string or a zero-argument callable"),
        ({"limit": 0}, "limit must be at least 1, got 0"),
        ({"limit": 1.5}, "limit must be an int"),
    ],
)
def test_bad_definitions_are_refused(kwargs: dict[str, Any], problem: str) -> None:
    key = kwargs.get("key", "k")
    limit = kwargs.get("limit", 1)

    class Bad(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Lock("l", key, sf.Step("s", lambda: None), limit=limit))

    with pytest.raises(DefinitionError, match=problem):
        sf.validate(Bad().definition())


def test_a_key_that_gives_no_string_is_a_clear_error(tmp_path: Path) -> None:
    class Empty(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Lock("l", lambda: "", sf.Step("s", lambda: None)))

    engine = Engine(f"sqlite:///{tmp_path / 'k.db'}", workflows=[Empty])
    with engine, pytest.raises(StmtflowError, match="its key must give a non-empty string"):
        engine.start(Empty, id="e")


def test_json_and_diagram_show_the_lock() -> None:
    from stmtflow.render import definition_json, to_mermaid

    tree = Pair().definition()
    node = definition_json(tree)["body"][0]
    assert (node["type"], node["key"], node["limit"]) == ("Lock", "printer", 2)
    assert [kid["name"] for kid in node["body"]] == ["enter", "hold"]
    chart = to_mermaid(tree)
    assert "lock 'slot' on 'printer', 2 slots" in chart and "release 'slot'" in chart


class Rounds(sf.WorkflowState):
    """Takes the same lock in every round of a loop: each round queues anew."""

    rounds: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "round",
                lambda: self.rounds < 2,
                sf.Lock("r", "loop", sf.Step("count", self.count)),
            )
        )

    def count(self) -> None:
        self.rounds += 1


class Caught(sf.WorkflowState):
    """A step in the body fails for good; the catch outside the lock releases it."""

    entered: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Try(
                sf.Lock(
                    "c",
                    "caught",
                    sf.Step("enter", self.enter),
                    sf.Wait("hold", sf.OnEvent("go", lambda: None)),
                    sf.Step("boom", self.boom, retry=sf.RetryPolicy(max_attempts=1)),
                )
            ).Catch(ValueError, sf.Wait("after", sf.OnEvent("done", lambda: None))),
        )

    def enter(self) -> None:
        self.entered = True

    def boom(self) -> None:
        raise ValueError("no")


@pytest.mark.parametrize("kind", LOCK_STORES)
def test_a_loop_takes_the_lock_again_each_round(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = store_url(request, tmp_path, kind, "rounds.db")
    with Engine(url, workflows=[Rounds]) as engine:
        engine.start(Rounds, id="r")
        settle(engine)
        assert engine.get("r").status == "finished"
        assert engine.get("r").data.rounds == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", LOCK_STORES)
def test_a_caught_error_leaves_the_body_and_releases(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = store_url(request, tmp_path, kind, "caught.db")
    with Engine(url, workflows=[Caught]) as engine:
        for id in ("a", "b"):
            engine.start(Caught, id=id)
            settle(engine)
        assert [entered(engine, i) for i in "ab"] == [True, False]
        engine.send("a", "go", None)
        settle(engine)
        assert engine.get("a").status == "waiting"  # in the catch, outside the lock
        assert entered(engine, "b")


def _event_seq(engine: Engine, id: str, kind: str, name: str) -> int:
    return next(e.seq for e in engine.history(id) if e.kind == kind and e.name == name)


@pytest.mark.parametrize("store", HISTORY_STORES)
def test_rewind_and_fork_into_a_lock_body_are_refused(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A restored thread inside the body would run it beside the lock's later holders."""
    url = store_url(request, tmp_path, store, "rewind.db")
    with Engine(url, workflows=[Pay]) as engine:
        start(engine, Pay, ["a"])
        inside = _event_seq(engine, "a", "step_completed", "enter")
        before = engine.get("a")
        with pytest.raises(sf.RewindError, match=r"inside Lock 'pay'"):
            engine.rewind("a", to=inside)
        with pytest.raises(sf.RewindError, match=r"inside Lock 'pay'"):
            engine.fork("a", to=inside, new_id="a-copy")
        after = engine.get("a")
        assert (after.status, after.data) == (before.status, before.data)
        assert [i.id for i in engine.list()] == ["a"]


@pytest.mark.parametrize("store", HISTORY_STORES)
def test_rewinding_a_holder_to_before_the_lock_releases_its_slot(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    class Gate(sf.WorkflowState):
        """Waits for "open" before it takes the lock of `Pay`'s default account."""

        entered: bool = False

        def definition(self) -> sf.Section:
            return sf.S(
                sf.Wait("gate", sf.OnEvent("open", lambda: None)),
                sf.Lock(
                    "pay",
                    "account:acct-1",
                    sf.Step("enter", self.enter),
                    sf.Wait("hold", sf.OnEvent("go", lambda: None)),
                ),
            )

        def enter(self) -> None:
            self.entered = True

    url = store_url(request, tmp_path, store, "rewind.db")
    with Engine(url, workflows=[Pay, Gate]) as engine:
        start(engine, Gate, ["g"])
        gate = max(e.seq for e in engine.history("g"))  # waiting at the gate, no lock yet
        engine.send("g", "open", None)
        settle(engine)
        assert entered(engine, "g")
        start(engine, Pay, ["p"])
        assert not entered(engine, "p")  # g holds the slot
        engine.rewind("g", to=gate)
        settle(engine)
        assert entered(engine, "p")  # the rewind released g's slot to the next waiter
        assert engine.pending("g")[0].name == "open"


@pytest.mark.parametrize("kind", EVERY_STORE)
def test_a_refused_write_queues_nothing_and_a_release_grants_the_next(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Store level: the claims travel in the write's batch, applied only if the write is."""
    claim = LockClaim("t", "pay", "k", 1)
    with open_store(store_url(request, tmp_path, kind, "refused.db")) as store:
        for id in "abc":
            store.create(Record(id=id, workflow="W", data="{}", state="{}", status="waiting"))
        store.update(store.get("a"), expected_version=1, batch=Batch(locks=(claim,)))
        with pytest.raises(ConflictError):
            store.update(store.get("b"), expected_version=7, batch=Batch(locks=(claim,)))
        store.update(store.get("c"), expected_version=1, batch=Batch(locks=(claim,)))
        assert [m.event for m in store.inbox("a")] == ["pay.lock"]
        store.update(store.get("a"), expected_version=2, batch=Batch(locks=()))  # a releases
        assert store.inbox("b") == []  # b never queued: c, after it, got the slot
        assert [(m.event, m.thread_id, m.input) for m in store.inbox("c")] == [
            ("pay.lock", "t", '"k"')
        ]

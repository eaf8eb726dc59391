"""Buffered events (`Engine.send(..., buffer=True, key=...)`) on every store: kept in the
instance's inbox until a wait arms them, delivered in arrival order, deduplicated by key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_urls import EVERY_STORE, store_url

import stmtflow as sf
from stmtflow.runtime import Engine
from stmtflow.testing import WorkflowHarness


class Mailbox(sf.WorkflowState):
    """Opens, then takes three notes, one wait at a time."""

    notes: list[int] = []
    opened: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Wait("closed", sf.OnEvent("open", self.open)),
            sf.For(
                "reading",
                lambda: len(self.notes) < 3,
                sf.Wait("next", sf.OnEvent("note", self.note)),
            ),
        )

    def open(self) -> None:
        self.opened = True

    def note(self, n: int) -> int:
        if n == 13:
            raise ValueError("unlucky")
        self.notes.append(n)
        return n


@pytest.fixture(params=EVERY_STORE)
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    url = store_url(request, tmp_path, request.param, "inbox.db")
    with Engine(url, workflows=[Mailbox]) as eng:
        yield eng


def test_buffered_events_are_delivered_in_arrival_order_when_the_wait_arms(
    engine: Engine,
) -> None:
    engine.start(Mailbox, id="m")
    for n in (3, 1, 2):
        assert engine.send("m", "note", n, buffer=True) is None
    assert [m.input for m in engine.store.inbox("m")] == ["3", "1", "2"]
    assert engine.get("m").data.notes == []  # type: ignore[attr-defined]
    engine.send("m", "open")
    inst = engine.get("m")
    assert inst.status is sf.WorkflowStatus.FINISHED
    assert inst.data.notes == [3, 1, 2]  # type: ignore[attr-defined]
    assert engine.store.inbox("m") == []


def test_an_unbuffered_send_to_an_instance_not_waiting_is_refused(engine: Engine) -> None:
    engine.start(Mailbox, id="m")
    before = engine.store.get("m")
    with pytest.raises(sf.UnknownCallback):
        engine.send("m", "note", 1)
    assert engine.store.get("m").version == before.version
    assert engine.store.inbox("m") == []


def test_a_key_is_delivered_once(engine: Engine) -> None:
    engine.start(Mailbox, id="m")
    engine.send("m", "note", 7, buffer=True, key="k-7")
    engine.send("m", "note", 7, buffer=True, key="k-7")  # a retry of the same send
    assert len(engine.store.inbox("m")) == 1
    engine.send("m", "open")
    engine.send("m", "note", 7, buffer=True, key="k-7")  # long after: still known
    engine.send("m", "note", 8, key="k-8")  # delivered at once, and remembered
    engine.send("m", "note", 8, key="k-8")
    assert engine.get("m").data.notes == [7, 8]  # type: ignore[attr-defined]


def test_a_buffered_event_is_checked_before_it_is_kept(engine: Engine) -> None:
    engine.start(Mailbox, id="m")
    with pytest.raises(sf.CallbackInputError):
        engine.send("m", "note", "not a number", buffer=True)
    with pytest.raises(sf.UnknownCallback, match="no event 'nope'"):
        engine.send("m", "nope", buffer=True)
    assert engine.store.inbox("m") == []


def test_a_buffered_event_for_a_waiting_instance_is_delivered_at_once(engine: Engine) -> None:
    engine.start(Mailbox, id="m")
    engine.send("m", "open")
    assert engine.send("m", "note", 5, buffer=True) == 5
    assert engine.store.inbox("m") == []


def test_the_worker_delivers_what_is_buffered(engine: Engine) -> None:
    """Without follow-ups (another process sent the events), a tick takes the inbox."""
    engine.start(Mailbox, {"opened": False}, id="m")
    engine._follow_up = lambda touched: None  # type: ignore[method-assign]
    engine.send("m", "note", 1, buffer=True)
    assert engine.tick() == 0  # looked at once: kept, no longer due
    assert engine.store.claim_due(sf_now(), "x", _lease()) == []
    engine.send("m", "open")
    engine.send("m", "note", 2, buffer=True)
    engine.send("m", "note", 3, buffer=True)
    engine.tick()
    assert engine.get("m").data.notes == [1, 2, 3]  # type: ignore[attr-defined]


def sf_now() -> Any:
    from stmtflow.stores.base import utcnow

    return utcnow()


def _lease() -> Any:
    from datetime import timedelta

    return timedelta(seconds=5)


def test_the_harness_buffers_too() -> None:
    h = WorkflowHarness(Mailbox).start()
    h.send("note", 1, buffer=True)
    h.send("open")
    h.send("note", 2)
    h.send("note", 3, key="three")
    h.send("note", 3, key="three")
    assert h.data.notes == [1, 2, 3]
    assert h.status is sf.WorkflowStatus.FINISHED


def test_a_buffered_event_whose_handler_fails_is_kept_with_the_error(engine: Engine) -> None:
    engine.start(Mailbox, id="m")
    engine.send("m", "note", 13, buffer=True)
    engine.send("m", "note", 1, buffer=True)
    engine.send("m", "open")
    inst = engine.get("m")
    assert inst.data.notes == [1]  # type: ignore[attr-defined]
    assert inst.error is not None and "unlucky" in inst.error and "'note'" in inst.error
    assert [(m.input, m.status) for m in engine.store.inbox("m")] == [("13", "kept")]
    assert inst.wake_at is not None  # retried after the error backoff


class Reader(sf.WorkflowState):
    """Takes ``count`` notes, one wait at a time, once opened."""

    count: int = 0
    notes: list[int] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Wait("closed", sf.OnEvent("open", lambda: None)),
            sf.For(
                "reading",
                lambda: len(self.notes) < self.count,
                sf.Wait("next", sf.OnEvent("note", self.notes.append)),
            ),
        )


@settings(max_examples=40, deadline=None)
@given(
    sends=st.lists(
        st.tuples(st.integers(0, 50), st.one_of(st.none(), st.sampled_from("abcd"))),
        max_size=12,
    ),
    early=st.integers(0, 12),
)
def test_buffered_sends_arrive_once_each_in_order(
    sends: list[tuple[int, str | None]], early: int
) -> None:
    """Whatever is sent before the wait arms and after: each key delivered once, everything in
    the order it was sent."""
    expected: list[int] = []
    seen: set[str] = set()
    for n, key in sends:
        if key is None or key not in seen:
            expected.append(n)
            seen.update({key} if key else set())
    with Engine("memory://", workflows=[Reader]) as engine:
        engine.start(Reader, {"count": len(expected)}, id="r")
        for index, (n, key) in enumerate(sends):
            if index == early:
                engine.send("r", "open")
            engine.send("r", "note", n, buffer=True, key=key)
        if early >= len(sends):
            engine.send("r", "open")
        inst = engine.get("r")
        assert inst.data.notes == expected  # type: ignore[attr-defined]
        assert inst.status is sf.WorkflowStatus.FINISHED

"""`Engine.astart` / `Engine.asend` and async workflows in the engine (DESIGN §11).

One interpreter and one unit of work serve both: the unit runs in the engine's thread pool (the
event loop never waits on the store) and async user code is awaited on the caller's loop; the
sync methods and the worker await it on a loop of the engine's own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import stmtflow as sf
from stmtflow import Engine

LOOPS: list[Any] = []


class Fetch(sf.WorkflowState):
    """An async step, then a wait on an async handler, then an async step that may fail."""

    log: list[str] = []
    fail_next: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("fetch", self.fetch),
            sf.Wait("answer", sf.OnEvent("reply", self.on_reply)),
            sf.Step("store", self.store, retry=sf.RetryPolicy(max_attempts=3)),
        )

    async def fetch(self) -> None:
        await asyncio.sleep(0)
        LOOPS.append(asyncio.get_running_loop())
        self.log.append(f"fetch {sf.current_step().key}")

    async def on_reply(self, text: str) -> str:
        await asyncio.sleep(0)
        LOOPS.append(asyncio.get_running_loop())
        self.log.append(f"reply {text}")
        self.fail_next = 1 if text == "flaky" else 0
        return text.upper()

    async def store(self) -> None:
        await asyncio.sleep(0)
        attempt = sf.current_step().attempt
        if self.fail_next and attempt == 1:
            raise RuntimeError("store down")
        self.log.append(f"store attempt {attempt}")


@pytest.fixture(autouse=True)
def _clear_loops() -> Iterator[None]:
    LOOPS.clear()
    yield
    LOOPS.clear()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'async.db'}"
    else:
        url = "memory://"
    with Engine(url, workflows=[Fetch]) as eng:
        yield eng


def test_astart_and_asend_await_async_code_on_the_callers_loop(engine: Engine) -> None:
    async def scenario() -> tuple[sf.Instance, Any, asyncio.AbstractEventLoop]:
        inst = await engine.astart(Fetch, id="f-1")
        assert inst.status is sf.WorkflowStatus.WAITING
        out = await engine.asend("f-1", "reply", "hello")
        return await engine.athread(engine.get, "f-1"), out, asyncio.get_running_loop()

    inst, out, loop = asyncio.run(scenario())
    assert out == "HELLO"
    assert isinstance(inst.data, Fetch)
    assert inst.data.log == ["fetch f-1/_main_/fetch/1", "reply hello", "store attempt 1"]
    assert inst.status is sf.WorkflowStatus.FINISHED
    assert [loop, loop] == LOOPS  # both ran on the caller's loop, not the engine's own


def test_astart_twice_with_one_id_runs_nothing_again(engine: Engine) -> None:
    async def scenario() -> list[sf.Instance]:
        return [await engine.astart(Fetch, id="f-2") for _ in range(2)]

    first, second = asyncio.run(scenario())
    assert first.version == second.version
    assert isinstance(second.data, Fetch)
    assert len(second.data.log) == 1


def test_a_refused_asend_raises_and_stores_nothing(engine: Engine) -> None:
    async def scenario() -> None:
        await engine.astart(Fetch, id="f-3")
        before = engine.store.get("f-3")
        with pytest.raises(sf.CallbackInputError):
            await engine.asend("f-3", "reply", 42)
        with pytest.raises(sf.UnknownCallback):
            await engine.asend("f-3", "nope")
        after = engine.store.get("f-3")
        assert (after.version, after.data, after.state) == (
            before.version,
            before.data,
            before.state,
        )

    asyncio.run(scenario())


def test_the_event_loop_runs_while_a_unit_writes_and_runs_sync_steps() -> None:
    class Slow(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Step("slow", lambda: time.sleep(0.3)))

    ticks: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        await engine.astart(Slow, id="s-1")
        stop.set()
        await task

    with Engine("memory://", workflows=[Slow]) as engine:
        asyncio.run(scenario())
    # A blocked loop would have ticked once or twice; a free one about 30 times in 0.3 s.
    assert len(ticks) > 10


def test_sync_methods_and_the_worker_await_async_code_on_the_engines_loop(engine: Engine) -> None:
    engine.start(Fetch, id="f-4")
    assert engine.send("f-4", "reply", "flaky") == "FLAKY"
    inst = engine.get("f-4")
    assert inst.status is sf.WorkflowStatus.WAITING  # the async step failed once: a retry due
    assert "store down" in (inst.error or "")
    assert engine.tick(engine.clock() + timedelta(seconds=5)) == 1
    inst = engine.get("f-4")
    assert isinstance(inst.data, Fetch)
    assert inst.data.log[-1] == "store attempt 2"
    assert inst.status is sf.WorkflowStatus.FINISHED
    # Not the loop of any caller: the engine's own, on a thread of its own.
    assert len(LOOPS) == 2 and LOOPS[0] is LOOPS[1]
    assert not LOOPS[0].is_closed()


def test_a_sync_call_on_the_loops_own_thread_still_runs_async_code() -> None:
    """A sync `start` inside a coroutine blocks the loop, but the engine's loop runs the step."""
    with Engine("memory://", workflows=[Fetch]) as engine:

        async def scenario() -> sf.Instance:
            return engine.start(Fetch, id="f-5")

        inst = asyncio.run(scenario())
    assert inst.status is sf.WorkflowStatus.WAITING
    assert threading.active_count() >= 1


def test_close_stops_the_engines_threads() -> None:
    engine = Engine("memory://", workflows=[Fetch])
    engine.start(Fetch, id="f-6")
    names = {t.name for t in threading.enumerate()}
    assert "stmtflow-async" in names
    engine.close()
    assert "stmtflow-async" not in {t.name for t in threading.enumerate()}


class Emitting(sf.WorkflowState):
    """An async step that emits, and one that emits and then fails once."""

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Step("announce", self.announce),
            sf.Step("flaky", self.flaky, retry=sf.RetryPolicy(max_attempts=2)),
        )

    async def announce(self) -> None:
        await asyncio.sleep(0)
        sf.emit("orders", {"step": sf.current_step().step})

    async def flaky(self) -> None:
        await asyncio.sleep(0)
        attempt = sf.current_step().attempt
        sf.emit("orders", {"attempt": attempt})
        if attempt == 1:
            raise RuntimeError("not yet")


def test_what_an_async_step_emits_is_kept_only_once_it_returned() -> None:
    sent: list[Any] = []
    with Engine("memory://", workflows=[Emitting], sinks=[sent.append]) as engine:
        asyncio.run(engine.astart(Emitting, id="e-1"))
        engine.tick(engine.clock() + timedelta(seconds=5))  # the retry, on the engine's loop
        engine.outbox.deliver(engine.clock())
        assert engine.get("e-1").status is sf.WorkflowStatus.FINISHED
    payloads = [message.payload for message in sent]
    # The failed attempt's message was dropped with it; the others were kept and sent.
    assert payloads == ['{"step":"announce"}', '{"attempt":2}']

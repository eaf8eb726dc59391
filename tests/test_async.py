"""Async drivers: `aresume` / `ahandle_callback` / `acancel`, and the sync drivers' limits.

DESIGN §2: one interpreter behind both; under ``aresume`` actions, handlers and checkpoints may be
``async``; the sync ``resume`` never starts an event loop (safe inside one) and refuses an async
callable with an `ExecutionError` that points to ``aresume``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class AsyncHook:
    """A handler whose every method is async; records its calls outside the workflow data."""

    type = "async-hook"

    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    async def setup(self, req: sf.CallbackRequest) -> str:
        await asyncio.sleep(0)
        self.calls.append(("setup", req.name))
        return f"armed-{req.name}"

    async def handle(self, req: sf.CallbackRequest, input: Any) -> Any:
        await asyncio.sleep(0)
        self.calls.append(("handle", req.name, req.setup_data, input))
        return f"got {input}"

    async def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        await asyncio.sleep(0)
        self.calls.append(("teardown", req.name, handled))


class Mixed(sf.WorkflowState):
    """An async step, a sync step, a wait on async handlers, and an async OnEvent function."""

    log: list[str] = []

    def definition(self) -> sf.Section:
        calls = CALLS
        return sf.S(
            sf.Step("fetch", self.fetch),
            sf.Step("sync", lambda: self.log.append("sync")),
            sf.Wait(
                "w",
                sf.On("hook", AsyncHook(calls), sf.Step("after_hook", self.after_hook)),
                sf.On("other", AsyncHook(calls)),
                sf.OnEvent("typed", self.on_typed),
            ),
        )

    async def fetch(self) -> None:
        await asyncio.sleep(0)
        self.log.append(f"fetch {sf.current_step().key}")

    async def after_hook(self) -> None:
        self.log.append("after_hook")

    async def on_typed(self, value: int) -> int:
        await asyncio.sleep(0)
        self.log.append(f"typed {value}")
        return value * 2


CALLS: list[tuple[Any, ...]] = []


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def test_aresume_awaits_async_actions_and_handler_setup() -> None:
    wf, state = Mixed(), sf.new_state("mixed-1", Mixed)
    run(sf.aresume(wf, state, now=NOW))
    assert wf.log == ["fetch mixed-1/_main_/fetch/1", "sync"]
    assert CALLS == [("setup", "hook"), ("setup", "other")]
    events = {e.req.name: e for e in state.threads[0].wait_events}
    assert events["hook"].req.setup_data == "armed-hook"
    assert events["hook"].type == "async-hook"


def test_ahandle_callback_awaits_handle_and_aresume_awaits_teardown() -> None:
    wf, state = Mixed(), sf.new_state("mixed-2", Mixed)
    run(sf.aresume(wf, state, now=NOW))
    assert run(sf.ahandle_callback("hook", wf, state, 7, now=NOW)) == "got 7"
    assert CALLS[-1] == ("handle", "hook", "armed-hook", 7)
    run(sf.aresume(wf, state, now=NOW))
    assert sorted(c for c in CALLS if c[0] == "teardown") == [
        ("teardown", "hook", True),
        ("teardown", "other", False),
    ]
    assert wf.log[-1] == "after_hook"
    assert state.status is sf.WorkflowStatus.FINISHED


def test_an_async_on_event_function_is_awaited() -> None:
    wf, state = Mixed(), sf.new_state("mixed-3", Mixed)
    run(sf.aresume(wf, state, now=NOW))
    assert run(sf.ahandle_callback("typed", wf, state, 21)) == 42
    assert wf.log[-1] == "typed 21"


def test_an_async_checkpoint_is_awaited() -> None:
    seen: list[tuple[sf.CheckpointType, str]] = []

    class Two(sf.WorkflowState):
        log: list[str] = []

        def definition(self) -> sf.Section:
            return sf.S(sf.Step("a", lambda: self.log.append("a")))

    wf, state = Two(), sf.new_state("two-1", Two)

    async def checkpoint(kind: sf.CheckpointType) -> None:
        await asyncio.sleep(0)
        seen.append((kind, wf.model_dump_json()))

    run(sf.aresume(wf, state, checkpoint, now=NOW))
    assert [k for k, _ in seen] == [
        sf.CheckpointType.AFTER_RESUME,
        sf.CheckpointType.AFTER_STEP,
        sf.CheckpointType.AFTER_RESUME,
    ]
    assert seen[1][1] == '{"log":["a"]}'


def test_acancel_awaits_async_teardowns() -> None:
    wf, state = Mixed(), sf.new_state("mixed-4", Mixed)
    run(sf.aresume(wf, state, now=NOW))
    run(sf.acancel(wf, state, now=NOW))
    assert state.status is sf.WorkflowStatus.CANCELLED
    assert sorted(c for c in CALLS if c[0] == "teardown") == [
        ("teardown", "hook", False),
        ("teardown", "other", False),
    ]


# -- sync drivers -------------------------------------------------------------------------------


class Plain(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Go("side", sf.S(sf.Step("side_step", lambda: self.log.append("side")))),
            sf.Step("one", lambda: self.log.append("one")),
            sf.Wait("w", sf.OnEvent("go", lambda n: self.log.append(f"go {n}"))),
            sf.For("loop", lambda: len(self.log) < 6, sf.Step("more", self.more)),
        )

    def more(self) -> None:
        self.log.append("more")


def test_sync_resume_works_inside_a_running_event_loop() -> None:
    async def service() -> tuple[list[str], sf.WorkflowStatus]:
        wf, state = Plain(), sf.new_state("plain-1", Plain)
        sf.resume(wf, state, now=NOW)
        sf.handle_callback("go", wf, state, 1, now=NOW)
        sf.resume(wf, state, now=NOW)
        return wf.log, state.status

    log, status = run(service())
    assert log == ["one", "side", "go 1", "more", "more", "more"]
    assert status is sf.WorkflowStatus.FINISHED


def trace(driver: str) -> tuple[list[str], list[sf.CheckpointType], str]:
    wf, state = Plain(), sf.new_state("plain-2", Plain)
    kinds: list[sf.CheckpointType] = []
    if driver == "sync":
        sf.resume(wf, state, kinds.append, now=NOW)
        sf.handle_callback("go", wf, state, 9, now=NOW)
        sf.resume(wf, state, kinds.append, now=NOW)
    else:

        async def drive() -> None:
            await sf.aresume(wf, state, kinds.append, now=NOW)
            await sf.ahandle_callback("go", wf, state, 9, now=NOW)
            await sf.aresume(wf, state, kinds.append, now=NOW)

        run(drive())
    return wf.log, kinds, state.model_dump_json()


def test_aresume_and_resume_produce_identical_traces() -> None:
    assert trace("sync") == trace("async")


class Saved:
    """A checkpoint callback keeping the JSON a caller would have persisted last."""

    def __init__(self, wf: sf.WorkflowState, state: sf.State) -> None:
        self.wf, self.state = wf, state
        self.last = (wf.model_dump_json(), state.model_dump_json())

    def __call__(self, kind: sf.CheckpointType) -> None:
        self.last = (self.wf.model_dump_json(), self.state.model_dump_json())

    def now(self) -> tuple[str, str]:
        return self.wf.model_dump_json(), self.state.model_dump_json()


def test_sync_resume_refuses_an_async_action_and_changes_nothing() -> None:
    class Later(sf.WorkflowState):
        log: list[str] = []

        def definition(self) -> sf.Section:
            return sf.S(sf.Step("sync", lambda: self.log.append("sync")), sf.Step("a", self.a))

        async def a(self) -> None:
            self.log.append("a")

    wf, state = Later(), sf.new_state("later-1", Later)
    saved = Saved(wf, state)
    with pytest.raises(sf.ExecutionError, match="aresume") as info:
        sf.resume(wf, state, saved, now=NOW)
    assert "'a'" in str(info.value) and "later-1" in str(info.value)
    assert saved.now() == saved.last  # exactly as at the last checkpoint
    assert wf.log == ["sync"]
    run(sf.aresume(wf, state, now=NOW))
    assert wf.log == ["sync", "a"]


def test_sync_resume_refuses_a_coroutine_returned_by_a_plain_callable() -> None:
    async def later() -> None:
        raise AssertionError("never awaited")

    class Lam(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Step("lam", lambda: later()))

    wf, state = Lam(), sf.new_state("lam-1", Lam)
    saved = Saved(wf, state)
    with pytest.raises(sf.ExecutionError, match="aresume"):
        sf.resume(wf, state, saved, now=NOW)
    assert saved.now() == saved.last


def test_sync_resume_refuses_an_async_setup_and_aresume_sets_it_up_later() -> None:
    class Hooked(sf.WorkflowState):
        def definition(self) -> sf.Section:
            return sf.S(sf.Wait("w", sf.On("hook", AsyncHook(CALLS))))

    wf, state = Hooked(), sf.new_state("hooked-1", Hooked)
    saved = Saved(wf, state)
    with pytest.raises(sf.ExecutionError, match="aresume") as info:
        sf.resume(wf, state, saved, now=NOW)
    assert "setup" in str(info.value) and "'hook'" in str(info.value)
    assert saved.now() == saved.last and CALLS == []
    assert state.threads[0].wait_events[0].status is sf.WaitEventStatus.PENDING_SETUP
    run(sf.aresume(wf, state, now=NOW))
    assert state.threads[0].wait_events[0].req.setup_data == "armed-hook"


def test_sync_resume_refuses_an_async_checkpoint() -> None:
    async def checkpoint(kind: sf.CheckpointType) -> None:
        return None

    wf, state = Plain(), sf.new_state("plain-3", Plain)
    with pytest.raises(sf.ExecutionError, match="aresume") as info:
        sf.resume(wf, state, checkpoint, now=NOW)
    assert "checkpoint" in str(info.value)
    assert wf.log == []  # no action ran after the refused checkpoint


@pytest.mark.parametrize("event", ["hook", "typed"])
def test_sync_handle_callback_refuses_an_async_handler_and_changes_nothing(event: str) -> None:
    wf, state = Mixed(), sf.new_state("mixed-6", Mixed)
    run(sf.aresume(wf, state, now=NOW))
    before = (wf.model_dump_json(), state.model_dump_json())
    with pytest.raises(sf.ExecutionError, match="aresume"):
        sf.handle_callback(event, wf, state, 1, now=NOW)
    assert (wf.model_dump_json(), state.model_dump_json()) == before
    assert not any(c[0] == "handle" for c in CALLS)


def test_sync_resume_refuses_an_async_teardown() -> None:
    wf, state = Mixed(), sf.new_state("mixed-7", Mixed)
    run(sf.aresume(wf, state, now=NOW))
    run(sf.ahandle_callback("typed", wf, state, 1))
    with pytest.raises(sf.ExecutionError, match="aresume"):
        sf.resume(wf, state, now=NOW)
    run(sf.aresume(wf, state, now=NOW))
    assert state.status is sf.WorkflowStatus.FINISHED
    assert state.teardowns == []


class Fragile(sf.WorkflowState):
    items: list[list[str]] = [["a"]]

    def definition(self) -> sf.Section:
        return sf.S(sf.Wait("w", sf.OnEvent("e", self.on_e)))

    async def on_e(self, value: str) -> None:
        self.items[0].append(value)
        await asyncio.sleep(0)
        raise ValueError(f"bad {value}")


def test_an_async_handler_that_raises_is_rolled_back() -> None:
    wf, state = Fragile(), sf.new_state("fragile-1", Fragile)
    run(sf.aresume(wf, state, now=NOW))
    before = (wf.model_dump_json(), state.model_dump_json())
    with pytest.raises(sf.HandlerError) as info:
        run(sf.ahandle_callback("e", wf, state, "x"))
    assert isinstance(info.value.__cause__, ValueError)
    assert (wf.model_dump_json(), state.model_dump_json()) == before


def test_an_async_action_that_raises_is_rolled_back() -> None:
    class Grows(sf.WorkflowState):
        items: list[list[str]] = [["a"]]

        def definition(self) -> sf.Section:
            return sf.S(sf.Step("grow", self.grow))

        async def grow(self) -> None:
            self.items[0].append("b")
            await asyncio.sleep(0)
            raise OSError("disk full")

    wf, state = Grows(), sf.new_state("grows-1", Grows)
    saved = Saved(wf, state)
    with pytest.raises(sf.StepError) as info:
        run(sf.aresume(wf, state, saved, now=NOW))
    assert isinstance(info.value.__cause__, OSError) and info.value.step == "grow"
    assert saved.now() == saved.last
    assert wf.items == [["a"]]

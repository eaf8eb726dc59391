"""Properties over generated workflows (STYLE.md point 11; DESIGN §3.1, §3.2, §3.11, §3.12).

Hypothesis builds small statement trees — steps, waits with several events, loops with counters,
``If`` on the data, ``Go`` threads — and an order in which to deliver the events. Each is run
like a service would: JSON saved at every checkpoint, events delivered between resumes. Then:

(a) reloading fresh objects from the saved JSON at random checkpoints gives the same step trace
    and the same final JSON as an uninterrupted run;
(b) a crash (the checkpoint callback raising before it saved) re-runs at most the one step
    whose ``after_step`` checkpoint was lost, with the same idempotency key, and skips none;
(c) at every checkpoint the workflow status agrees with its threads, and ``State.pc`` grew.

The events of a wait are a function handler, a timer, a handler with setup and teardown, or a
person's form (`HumanInput`, answered with a typed input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import stmtflow as sf

NOW = datetime(2024, 1, 1, tzinfo=UTC)

EXECUTED: list[str] = []
"""Every step execution, as ``name#key`` — outside the data, like a side effect in the world."""

Spec = list[Any]


class Generated(sf.WorkflowState):
    """A workflow whose definition is built from ``spec`` (JSON, so it survives reloads)."""

    spec: Spec = []
    trace: list[str] = []
    counters: dict[str, int] = {}

    def definition(self) -> sf.Section:
        return sf.S(*self._body(self.spec))

    def _body(self, body: Spec) -> list[Any]:
        out: list[Any] = []
        for node in body:
            out.extend(self._node(node))
        return out

    def _node(self, node: list[Any]) -> list[Any]:
        kind, name = node[0], node[1]
        if kind == "step":
            return [sf.Step(name, self._action(name))]
        if kind == "wait":
            return [sf.Wait(name, *(self._event(i, *event) for i, event in enumerate(node[2])))]
        if kind == "loop":
            times, body = node[2], node[3]
            return [
                sf.For(
                    name,
                    lambda: self.counters.get(name, 0) < times,
                    sf.Step(f"{name}_next", self._count(name)),
                    *self._body(body),
                ),
                sf.Step(f"{name}_reset", self._reset(name)),
            ]
        if kind == "if":
            return [
                sf.If(len(self.trace) % 2 == 0, *self._body(node[2])).Else(*self._body(node[3]))
            ]
        if kind == "go":
            return [sf.Go(name, sf.S(*self._body(node[2])))]
        raise AssertionError(node)

    def _action(self, name: str) -> Callable[[], None]:
        def action() -> None:
            EXECUTED.append(f"{name}#{sf.current_step().key}")
            self.trace.append(name)

        return action

    def _count(self, loop: str) -> Callable[[], None]:
        def action() -> None:
            EXECUTED.append(f"{loop}_next#{sf.current_step().key}")
            self.counters[loop] = self.counters.get(loop, 0) + 1

        return action

    def _reset(self, loop: str) -> Callable[[], None]:
        def action() -> None:
            EXECUTED.append(f"{loop}_reset#{sf.current_step().key}")
            self.counters[loop] = 0

        return action

    def _event(self, i: int, event: str, body: Spec) -> sf.On:
        """Events take turns: a function handler, a timer, a handler with setup and teardown,
        and a person's form (the fourth kind by the event's own number, as a wait has at most
        three events)."""
        if int(event.rsplit("e", 1)[1]) % 4 == 0:
            form = sf.HumanInput(Note, prompt=f"note for {event}?", fn=self._noted(event))
            return sf.On(event, form, *self._body(body))
        match i % 3:
            case 0:
                return sf.OnEvent(event, lambda: self.trace.append(f"@{event}"), *self._body(body))
            case 1:
                return sf.On(event, sf.Timer(minutes=5), *self._body(body))
            case _:
                return sf.On(event, Hook(), *self._body(body))

    def _noted(self, event: str) -> Callable[[Note], None]:
        def noted(note: Note) -> None:
            self.trace.append(f"@{event}:{note.text}")

        return noted


class Note(BaseModel):
    """The form of the generated `HumanInput` events (the service answers ``{"text": ...}``)."""

    text: str


class Hook(sf.BaseHandler):
    """A handler with setup and teardown (they may run again after a crash; steps may not)."""

    def setup(self, req: sf.CallbackRequest) -> str:
        return f"hook:{req.thread_id}:{req.name}:{req.pc}"

    def handle(self, req: sf.CallbackRequest, input: Any) -> None:
        assert req.setup_data == f"hook:{req.thread_id}:{req.name}:{req.pc}"

    def teardown(self, req: sf.CallbackRequest, handled: bool) -> None:
        return None


# -- generating trees ---------------------------------------------------------------------------


@st.composite
def bodies(draw: st.DrawFn, names: list[int], depth: int, top: bool = False) -> Spec:
    def fresh(prefix: str) -> str:
        names.append(0)
        return f"{prefix}{len(names)}"

    kinds = ["step", "step", "wait"]
    if depth < 2:
        kinds += ["loop", "if"]
    if top:
        kinds += ["go"]
    body: Spec = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(kinds))
        if kind == "step":
            body.append(["step", fresh("s")])
        elif kind == "wait":
            wait = fresh("w")
            events = []
            for _ in range(draw(st.integers(1, 3))):
                inner = draw(bodies(names, depth + 1)) if depth < 2 and draw(st.booleans()) else []
                events.append([fresh(f"{wait}e"), inner])
            body.append(["wait", wait, events])
        elif kind == "loop":
            body.append(
                ["loop", fresh("l"), draw(st.integers(0, 3)), draw(bodies(names, depth + 1))]
            )
        elif kind == "if":
            then, other = draw(bodies(names, depth + 1)), draw(bodies(names, depth + 1))
            body.append(["if", fresh("i"), then, other])
        else:
            body.append(["go", fresh("g"), draw(bodies(names, depth + 1))])
    return body


specs = st.builds(list).flatmap(lambda names: bodies(names, 0, top=True))
choices = st.lists(st.integers(0, 1000), min_size=1, max_size=8)


# -- running like a service ---------------------------------------------------------------------


class Interrupt(Exception):
    """Raised from the checkpoint callback: the process stops here (after saving, or not)."""


@dataclass
class Service:
    """Drives a workflow the way a service would, keeping the JSON it last saved."""

    spec: Spec
    picks: list[int]
    stop_after: set[int] = field(default_factory=set)
    """Checkpoint numbers after which the process stops, having saved."""
    crash_at: int | None = None
    """The checkpoint number at which the process dies before saving."""
    reload_each_request: bool = False

    checkpoints: int = 0
    crashed_kind: sf.CheckpointType | None = None
    last_pc: int = -1
    executed_at_crash: int = 0

    def __post_init__(self) -> None:
        self.wf = Generated(spec=self.spec)
        self.state = sf.new_state("gen-1", Generated)
        self.saved = (self.wf.model_dump_json(), self.state.model_dump_json())

    def reload(self) -> None:
        self.wf = Generated.model_validate_json(self.saved[0])
        self.state = sf.load_state(self.saved[1])
        self.last_pc = self.state.pc

    def save(self) -> None:
        self.saved = (self.wf.model_dump_json(), self.state.model_dump_json())

    def checkpoint(self, kind: sf.CheckpointType) -> None:
        self.checkpoints += 1
        check_status(self.state)
        assert self.state.pc > self.last_pc, "State.pc must grow with every unit of progress"
        self.last_pc = self.state.pc
        if self.checkpoints == self.crash_at:
            self.crashed_kind = kind
            self.executed_at_crash = len(EXECUTED)
            raise Interrupt("died before saving")
        self.save()
        if self.checkpoints in self.stop_after:
            raise Interrupt("stopped after saving")

    def resume(self) -> None:
        while True:
            try:
                sf.resume(self.wf, self.state, self.checkpoint, now=NOW)
                return
            except Interrupt:
                self.reload()

    def run(self) -> tuple[str, str]:
        self.resume()
        for request in range(200):
            if self.state.status is sf.WorkflowStatus.FINISHED:
                return self.saved_or_live()
            waiting = [
                (t.id, e.req.name)
                for t in self.state.threads
                if t.status is sf.ThreadStatus.WAITING_EVENT
                for e in t.wait_events
            ]
            assert waiting, f"stuck: {self.state.model_dump_json()}"
            thread_id, event = waiting[self.picks[request % len(self.picks)] % len(waiting)]
            if self.reload_each_request:
                self.reload()
            form = self.state.thread(thread_id)
            asks = form is not None and any(
                e.req.name == event and e.type == "HumanInput" for e in form.wait_events
            )
            sf.handle_callback(
                sf.CallbackRequest(name=event, thread_id=thread_id),
                self.wf,
                self.state,
                {"text": f"r{request}"} if asks else None,
            )
            self.save()
            self.last_pc = self.state.pc
            self.resume()
        raise AssertionError("too many requests")

    def saved_or_live(self) -> tuple[str, str]:
        live = (self.wf.model_dump_json(), self.state.model_dump_json())
        assert live == self.saved
        return live


def check_status(state: sf.State) -> None:
    """DESIGN §2: the workflow status agrees with its threads' statuses."""
    runnable = [
        t
        for t in state.threads
        if t.status is sf.ThreadStatus.RESUMING
        or (t.status is sf.ThreadStatus.EXECUTING and t.retry_at is None)
    ]
    if state.status is sf.WorkflowStatus.FINISHED:
        assert state.threads == []
    elif state.status is sf.WorkflowStatus.WAITING:
        assert runnable == [], state.model_dump_json()
    else:
        assert state.status is sf.WorkflowStatus.RESUMING
        assert runnable, state.model_dump_json()
    assert [t.id for t in state.threads][:1] in ([], [sf.MAIN_THREAD])
    pcs = [t.pc for t in state.threads]
    assert all(pc <= state.pc for pc in pcs)


def reference(spec: Spec, picks: list[int]) -> tuple[list[str], tuple[str, str], int]:
    EXECUTED.clear()
    service = Service(spec, picks)
    final = service.run()
    return list(EXECUTED), final, service.checkpoints


FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(spec=specs, picks=choices, data=st.data())
def test_reloading_from_json_at_any_checkpoint_gives_the_same_run(
    spec: Spec, picks: list[int], data: st.DataObject
) -> None:
    ref_log, ref_final, count = reference(spec, picks)
    assert len(set(ref_log)) == len(ref_log), "two step executions shared an idempotency key"
    stops = data.draw(st.sets(st.integers(1, count), max_size=count))
    EXECUTED.clear()
    service = Service(spec, picks, stop_after=stops, reload_each_request=True)
    final = service.run()
    assert ref_log == EXECUTED
    assert final == ref_final


@FAST
@given(spec=specs, picks=choices, data=st.data())
def test_a_crash_repeats_at_most_the_step_whose_checkpoint_was_lost(
    spec: Spec, picks: list[int], data: st.DataObject
) -> None:
    ref_log, ref_final, count = reference(spec, picks)
    crash_at = data.draw(st.integers(1, count))
    EXECUTED.clear()
    service = Service(spec, picks, crash_at=crash_at)
    final = service.run()
    assert service.crashed_kind is not None
    if service.crashed_kind is sf.CheckpointType.AFTER_STEP:
        i = service.executed_at_crash - 1
        assert ref_log[: i + 1] + ref_log[i:] == EXECUTED
        assert EXECUTED[i] == EXECUTED[i + 1]  # the same step, with the same key
    else:
        assert ref_log == EXECUTED
    assert final == ref_final


def test_the_generator_covers_every_kind() -> None:
    """A smoke check that the strategy produces what the properties claim to cover."""
    seen: set[str] = set()

    def kinds(body: Spec) -> None:
        for node in body:
            seen.add(node[0])
            if node[0] == "wait":
                for _, inner in node[2]:
                    kinds(inner)
            elif node[0] in ("loop", "go"):
                kinds(node[-1])
            elif node[0] == "if":
                kinds(node[2])
                kinds(node[3])

    @settings(max_examples=60, deadline=None)
    @given(specs)
    def collect(spec: Spec) -> None:
        kinds(spec)

    collect()
    assert seen == {"step", "wait", "loop", "if", "go"}

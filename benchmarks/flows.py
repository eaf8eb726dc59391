"""The workflows the benchmarks run, one class per workload shape.

They live in a module of their own (not inside a workload) so that worker processes started by
W5 can import them by name.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import BaseModel

import stmtflow as sf
from stmtflow.dsl._statements import Cond, Statement


def _noop() -> None:
    """An action that does nothing (the extra statements of W1b never run it)."""


class Counter(sf.WorkflowState):
    """W1: a ``For`` loop of ``n`` steps, each incrementing ``count`` (eager condition)."""

    n: int = 1000
    count: int = 0

    def definition(self) -> sf.Section:
        return sf.S(sf.For("loop", self.count < self.n, sf.Step("inc", self.inc)))

    def inc(self) -> None:
        self.count += 1


class StaticCounter(sf.WorkflowState):
    """W1 with a lazy condition and ``static_definition``: the tree is built once per resume."""

    static_definition: ClassVar[bool] = True
    n: int = 1000
    count: int = 0

    def definition(self) -> sf.Section:
        return sf.S(sf.For("loop", lambda: self.count < self.n, sf.Step("inc", self.inc)))

    def inc(self) -> None:
        self.count += 1


def extra_statements(extra: int, cond: Cond) -> list[Statement]:
    """``extra`` statements that never run: blocks of one ``If`` (on ``cond``) and 9 steps.

    ``cond`` is false: a bool (eager, computed by ``definition()``) or a callable (lazy).
    """
    if extra % 10:
        raise ValueError(f"extra must be a multiple of 10, got {extra}")
    return [
        sf.If(cond, *(sf.Step(f"extra_{block}_{i}", _noop) for i in range(9)))
        for block in range(extra // 10)
    ]


class PaddedEager(sf.WorkflowState):
    """W1b: `Counter` whose definition also holds ``extra`` statements, eager conditions.

    The loop comes first; the extra statements follow it, each ``If`` false, so they run
    once when the loop ends and are otherwise only rebuilt and indexed. Use `padded` to get
    the class for one size (the interpreter caches a tree's index per class).
    """

    extra: ClassVar[int] = 0
    n: int = 1000
    count: int = 0

    def definition(self) -> sf.Section:
        loop = sf.For("loop", self.count < self.n, sf.Step("inc", self.inc))
        return sf.S(loop, *extra_statements(self.extra, self.count < 0))

    def inc(self) -> None:
        self.count += 1


class PaddedLazy(sf.WorkflowState):
    """W1b with lazy conditions and ``static_definition``."""

    static_definition: ClassVar[bool] = True
    extra: ClassVar[int] = 0
    n: int = 1000
    count: int = 0

    def definition(self) -> sf.Section:
        loop = sf.For("loop", lambda: self.count < self.n, sf.Step("inc", self.inc))
        return sf.S(loop, *extra_statements(self.extra, lambda: self.count < 0))

    def inc(self) -> None:
        self.count += 1


_padded: dict[tuple[bool, int], type[sf.WorkflowState]] = {}


def padded(extra: int, *, lazy: bool) -> type[sf.WorkflowState]:
    """The W1b class holding ``extra`` extra statements (a multiple of 10)."""
    key = (lazy, extra)
    if key not in _padded:
        base = PaddedLazy if lazy else PaddedEager
        name = f"{base.__name__}{extra}"
        _padded[key] = type(name, (base,), {"extra": extra, "__module__": __name__})
    return _padded[key]


class History(sf.WorkflowState):
    """W2/W4: runs ``target`` steps, waits for ``go``, then runs one more step and ends."""

    static_definition: ClassVar[bool] = True
    target: int = 10
    count: int = 0
    done: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For("loop", lambda: self.count < self.target, sf.Step("inc", self.inc)),
            sf.Wait("await_go", sf.OnEvent("go", self.on_go)),
            sf.Step("final", self.final),
        )

    def inc(self) -> None:
        self.count += 1

    def on_go(self) -> None:
        """The event carries no input."""

    def final(self) -> None:
        self.done = True


class FanOut(sf.WorkflowState):
    """W3/W4: starts ``width`` threads, each waiting for its own ``ping`` (by thread id).

    The main thread then waits until every thread received its event, and finishes.
    """

    static_definition: ClassVar[bool] = True
    width: int = 100
    started: int = 0
    received: int = 0

    def definition(self) -> sf.Section:
        waiter = sf.S(sf.Wait("await_ping", sf.OnEvent("ping", self.on_ping)))
        return sf.S(
            sf.For(
                "spawn",
                lambda: self.started < self.width,
                sf.Go("waiter", waiter, id=lambda: f"t{self.started}"),
                sf.Step("count_started", self.count_started),
            ),
            sf.WaitFor("all_received", lambda: self.received >= self.width),
        )

    def count_started(self) -> None:
        self.started += 1

    def on_ping(self) -> None:
        self.received += 1


class Nap(sf.WorkflowState):
    """W6: sleeps an hour, then runs one step."""

    static_definition: ClassVar[bool] = True
    woke: bool = False

    def definition(self) -> sf.Section:
        return sf.S(sf.Sleep("nap", timedelta(hours=1)), sf.Step("wake", self.wake))

    def wake(self) -> None:
        self.woke = True


class Order(sf.WorkflowState):
    """W5: 5 steps, a timer of 0 s, then one callback (``confirm``) sent from outside."""

    static_definition: ClassVar[bool] = True
    steps: int = 0
    confirmed: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            *(sf.Step(f"step_{i}", self.step) for i in range(5)),
            sf.Wait("pause", sf.On("pause_over", sf.Timer(seconds=0))),
            sf.Wait("await_confirm", sf.OnEvent("confirm", self.confirm)),
        )

    def step(self) -> None:
        self.steps += 1

    def confirm(self) -> None:
        self.confirmed = True


class ReviewForm(BaseModel):
    """W8: what a reviewer answers."""

    approve: bool
    comment: str = ""


class Review(sf.WorkflowState):
    """W8: ask ``reviewer`` for a `ReviewForm`, for at most a week."""

    reviewer: str = "p-00"
    approved: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Ask(
                "review",
                ReviewForm,
                self.answer,
                prompt="Approve the change?",
                assignee=self.reviewer,
                timeout=timedelta(days=7),
            )
        )

    def answer(self, form: ReviewForm) -> None:
        self.approved = form.approve


class OneStep(sf.WorkflowState):
    """W7's child: one step, and its result."""

    n: int = 0

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("double", self.double))

    def double(self) -> None:
        self.n *= 2

    def result(self) -> int:
        return self.n


class Caller(sf.WorkflowState):
    """W7's parent: a ``For`` loop of ``n`` ``Call``s of `OneStep`, one at a time (``ForEach``
    was not on main when W7 was written); ``total`` sums the children's results."""

    static_definition: ClassVar[bool] = True

    n: int = 100
    done: int = 0
    total: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.For(
                "calls",
                lambda: self.done < self.n,
                sf.Call("c", OneStep, lambda: {"n": self.done}, result=self.got),
            )
        )

    def got(self, result: sf.ChildResult) -> None:
        self.done += 1
        self.total += result.output


class FanCaller(sf.WorkflowState):
    """W7's fan-out parent: a ``ForEach`` over ``n`` items, each item's thread one ``Call`` of
    `OneStep`, at most 10 alive at once."""

    static_definition: ClassVar[bool] = True

    n: int = 100
    done: int = 0
    total: int = 0

    def definition(self) -> sf.Section:
        return sf.S(
            sf.ForEach(
                "items",
                lambda: list(range(self.n)),
                lambda item: sf.S(sf.Call("c", OneStep, {"n": item}, result=self.got)),
                max_concurrency=10,
            )
        )

    def got(self, result: sf.ChildResult) -> None:
        self.done += 1
        self.total += result.output

"""`ThreadIndex` answers what a scan of the thread list would, under any sequence of changes.

(Every engine and interpreter test also checks each answer against the same scans, those of
thread_scans.py: see conftest.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from thread_scans import SCANS, same

from stmtflow.core._thread_index import ThreadIndex
from stmtflow.dsl._handlers import Timer
from stmtflow.state import (
    CallbackRequest,
    Thread,
    ThreadStatus,
    WaitEvent,
    WaitEventStatus,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)

events = st.lists(
    st.builds(
        lambda timer, status, minutes: WaitEvent(
            type=Timer.type if timer else "Hook",
            req=CallbackRequest(
                name="e",
                setup_data=(NOW + timedelta(minutes=minutes)).isoformat() if timer else "",
            ),
            status=status,
        ),
        st.booleans(),
        st.sampled_from([WaitEventStatus.PENDING_SETUP, WaitEventStatus.SETUP]),
        st.integers(-5, 5),
    )
    | st.builds(
        lambda: WaitEvent(
            type="Hook", req=CallbackRequest(name="e"), status=WaitEventStatus.SETUP_ERROR
        )
    ),
    max_size=3,
).map(tuple)
changes = st.fixed_dictionaries(
    {
        "status": st.sampled_from(list(ThreadStatus)),
        "wait_events": events,
        "cur_callback": st.sampled_from([None, "e"]),
        "retry_at": st.sampled_from([None, NOW - timedelta(seconds=1), NOW + timedelta(hours=1)]),
        "last_error": st.sampled_from([None, "boom"]),
    }
)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), changes),
        st.tuples(st.just("change"), st.integers(0, 50), changes),
        st.tuples(st.just("remove"), st.integers(0, 50)),
        st.tuples(st.just("clear")),
    ),
    max_size=40,
)


def arguments(name: str, threads: list[Thread]) -> list[tuple[object, ...]]:
    """What to ask question ``name`` with."""
    if name == "next_runnable":
        return [(NOW,)]
    if name == "thread":
        return [(t.id,) for t in threads] + [("gone",)]
    if name == "alive":
        return [("a",), ("b",), ("none",)]
    return [()]


def assert_answers_as_a_scan(index: ThreadIndex, threads: list[Thread]) -> None:
    for name, scan in SCANS.items():
        for args in arguments(name, threads):
            got, expected = getattr(index, name)(*args), scan(threads, *args)
            assert same(got, expected), f"{name}{args}: {got!r}, a scan gives {expected!r}"


@settings(max_examples=200, deadline=None)
@given(start=st.lists(changes, max_size=6), ops=operations)
def test_answers_match_a_scan_after_any_changes(
    start: list[dict[str, object]], ops: list[tuple[object, ...]]
) -> None:
    made = 0

    def thread(fields: dict[str, object]) -> Thread:
        nonlocal made
        made += 1
        group = (None, "a", "b")[made % 3]  # a thread's group never changes
        return Thread(id=f"t{made}", name="w", group=group, **fields)  # type: ignore[arg-type]

    threads = [thread(fields) for fields in start]
    index = ThreadIndex(threads)
    assert_answers_as_a_scan(index, threads)
    for op in ops:
        if op[0] == "add":
            threads.append(thread(op[1]))  # type: ignore[arg-type]
            index.add(threads[-1])
        elif op[0] == "change" and threads:
            changed = threads[op[1] % len(threads)]  # type: ignore[operator]
            for name, value in op[2].items():  # type: ignore[attr-defined]
                setattr(changed, name, value)
            index.update(changed)
        elif op[0] == "remove" and threads:
            index.remove(threads.pop(op[1] % len(threads)))  # type: ignore[operator]
        elif op[0] == "clear":
            threads.clear()
            index.clear()
        assert_answers_as_a_scan(index, threads)

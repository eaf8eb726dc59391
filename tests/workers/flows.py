"""Workflows and a step log shared by the multi-process tests and the processes they launch.

The tests import this module as ``flows`` (with ``tests/workers`` put on ``sys.path``); the
worker and sender scripts beside it import it the same way, so the registered type names match.

Every step action writes one row to a **step log** -- an append-only table in its own SQLite
file, or a table in the test's PostgreSQL schema -- and commits it inside the action, before
the engine's checkpoint. So the log holds every step execution that began, including one its
process died in, with the step's idempotency key (``current_step().key``), the process and the
thread that ran it.

Environment:
    STMTFLOW_TEST_STEPLOG: where the step log lives: ``sqlite:////abs/steps.db`` or a
        ``postgresql://...?schema=name`` URL (the table goes into that schema).
    STMTFLOW_TEST_HANG_AFTER: if set to N, the N-th step execution of this process and every
        later one block forever right after their log row is committed: a process killed then
        dies in the middle of a step whose effect happened and whose checkpoint did not.
"""

# Pydantic copies field defaults per instance, so `log: list[str] = []` is safe in a model.

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import stmtflow as sf

STEPLOG_ENV = "STMTFLOW_TEST_STEPLOG"
HANG_ENV = "STMTFLOW_TEST_HANG_AFTER"

_CREATE = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS step_runs (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "instance TEXT NOT NULL, step TEXT NOT NULL, key TEXT NOT NULL, pid INTEGER NOT NULL, "
        "thread TEXT NOT NULL, hung INTEGER NOT NULL)"
    ),
    "postgresql": (
        "CREATE TABLE IF NOT EXISTS step_runs (seq bigserial PRIMARY KEY, "
        "instance text NOT NULL, step text NOT NULL, key text NOT NULL, pid integer NOT NULL, "
        "thread text NOT NULL, hung integer NOT NULL)"
    ),
}


@dataclass(frozen=True, slots=True)
class Run:
    """One logged step execution."""

    seq: int
    instance: str
    step: str
    key: str
    pid: int
    thread: str
    hung: bool


class StepLog:
    """The append-only step log at ``url`` (one connection per thread, autocommit)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.kind = "sqlite" if parts.scheme == "sqlite" else "postgresql"
        if self.kind == "sqlite":
            self.target = parts.path[1:]
        else:
            query = parse_qsl(parts.query)
            self.schema = next((v for k, v in query if k == "schema"), None)
            rest = urlencode([(k, v) for k, v in query if k != "schema"])
            self.target = urlunsplit(parts._replace(query=rest))
        self._local = threading.local()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.kind == "sqlite":
                conn = sqlite3.connect(self.target, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            else:
                import psycopg
                from psycopg import sql

                conn = psycopg.connect(self.target, autocommit=True)
                if self.schema:
                    conn.execute(
                        sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))
                    )
            self._local.conn = conn
        return conn

    def _sql(self, query: str) -> str:
        return query if self.kind == "sqlite" else query.replace("?", "%s")

    def create(self) -> None:
        self._conn().execute(_CREATE[self.kind])

    def add(self, info: sf.StepInfo, *, hung: bool) -> None:
        """Append one execution and commit it (durable when this returns)."""
        self._conn().execute(
            self._sql(
                "INSERT INTO step_runs (instance, step, key, pid, thread, hung) "
                "VALUES (?, ?, ?, ?, ?, ?)"
            ),
            (
                info.workflow_id,
                info.step,
                info.key,
                os.getpid(),
                threading.current_thread().name,
                int(hung),
            ),
        )

    def runs(self) -> list[Run]:
        """Every logged execution, in log order."""
        rows = self._conn().execute(
            "SELECT seq, instance, step, key, pid, thread, hung FROM step_runs ORDER BY seq"
        )
        return [Run(*row[:6], hung=bool(row[6])) for row in rows.fetchall()]

    def count(self, pid: int | None = None) -> int:
        """How many executions are logged (by process ``pid`` if given)."""
        if pid is None:
            row = self._conn().execute("SELECT count(*) FROM step_runs").fetchone()
        else:
            query = self._sql("SELECT count(*) FROM step_runs WHERE pid = ?")
            row = self._conn().execute(query, (pid,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


_lock = threading.Lock()
_executed = 0
_log: StepLog | None = None


def record_step() -> str:
    """Log the running step execution (committed), maybe hang; returns its idempotency key."""
    global _executed, _log
    info = sf.current_step()
    with _lock:
        _executed += 1
        count = _executed
        if _log is None:
            url = os.environ.get(STEPLOG_ENV)
            if not url:
                raise RuntimeError(f"set {STEPLOG_ENV} to the step log's URL")
            _log = StepLog(url)
    hang_after = int(os.environ.get(HANG_ENV) or 0)
    hung = bool(hang_after) and count >= hang_after
    _log.add(info, hung=hung)
    if hung:
        threading.Event().wait()  # until the test kills this process
    return info.key


# -- the crash test's workflow -------------------------------------------------------------------

WORK_SECONDS = 0.005
"""How long each ``work`` step takes after logging itself (its "external call")."""


class Crunch(sf.WorkflowState):
    """A timer, then ``steps`` executions of ``work`` in a loop, then ``finish``.

    ``done`` collects the idempotency key of every completed ``work`` execution: a lost
    update, or a step whose checkpoint was applied twice, shows up as a wrong or repeated key.
    """

    steps: int = 8
    done: list[str] = []
    finished: bool = False

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Sleep("warm_up", timedelta(0)),
            sf.For("loop", lambda: len(self.done) < self.steps, sf.Step("work", self.work)),
            sf.Step("finish", self.finish),
        )

    def work(self) -> None:
        key = record_step()
        time.sleep(WORK_SECONDS)
        self.done.append(key)

    def finish(self) -> None:
        record_step()
        self.finished = True


# -- the concurrency test's workflow -------------------------------------------------------------


class Relay(sf.WorkflowState):
    """Timers fired by workers and a callback from another process, racing on one instance.

    The main thread sleeps (a zero timer), runs ``first``, starts a side thread (a step, a
    ``nap`` timer, a step) and waits for ``pong`` from the sender; both threads then join before
    ``last``. ``log`` holds every step that completed, ``reply`` the callback's input.
    """

    nap: float = 0.0
    """Seconds the side thread sleeps: spread so its timer fires around the callback."""
    log: list[str] = []
    reply: str | None = None

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Sleep("settle", timedelta(0)),
            sf.Step("first", lambda: self.step("first")),
            sf.Go(
                "side",
                sf.S(
                    sf.Step("side_work", lambda: self.step("side_work")),
                    sf.Sleep("side_nap", timedelta(seconds=self.nap)),
                    sf.Step("side_done", lambda: self.step("side_done")),
                ),
            ),
            sf.Wait(
                "reply",
                sf.OnEvent("pong", self.on_pong),
                sf.On("give_up", sf.Timer(minutes=30)),
            ),
            sf.WaitFor("joined", lambda: "side_done" in self.log),
            sf.Step("last", lambda: self.step("last")),
        )

    def step(self, name: str) -> None:
        record_step()
        self.log.append(name)

    def on_pong(self, value: str) -> str:
        self.reply = value
        return f"ack {value}"


RELAY_STEPS = ("first", "side_work", "side_done", "last")


# -- the child crash test's workflows ------------------------------------------------------------

HANG_RESULT_ENV = "STMTFLOW_TEST_HANG_RESULT"
"""If set to N, the N-th delivery of a child's result in this process (and every later one)
blocks forever inside the parent's ``result`` handler: after the child's end was committed,
before the parent moved on."""

_results = 0


def _maybe_hang_in_result() -> None:
    global _results
    with _lock:
        _results += 1
        count = _results
    hang_after = int(os.environ.get(HANG_RESULT_ENV) or 0)
    if hang_after and count >= hang_after:
        threading.Event().wait()


class Charge(sf.WorkflowState):
    """One step (logged), and a result the parent checks."""

    n: int = 0
    charged: int = 0

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("charge", self.charge))

    def charge(self) -> None:
        record_step()
        time.sleep(WORK_SECONDS)
        self.charged = self.n * 10

    def result(self) -> int:
        return self.charged


class Payer(sf.WorkflowState):
    """A zero timer (so workers do the work), then ``calls`` Calls of ``Charge`` in turn."""

    calls: int = 4
    results: list[int] = []
    children: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Sleep("warm_up", timedelta(0)),
            sf.For(
                "paying",
                lambda: len(self.results) < self.calls,
                sf.Call("pay", "Charge", lambda: {"n": len(self.results)}, result=self.paid),
            ),
        )

    def paid(self, outcome: sf.ChildResult) -> None:
        _maybe_hang_in_result()
        assert outcome.status == "finished", outcome
        self.results.append(outcome.output)
        self.children.append(outcome.id)


# -- the compensation crash test's workflow ------------------------------------------------------


class Unwind(sf.WorkflowState):
    """A timer, ``steps`` executions of ``book`` (each with a compensation), then ``pay``, which
    fails for good: the worker unwinds, running ``book``'s compensation ``steps`` times.

    ``undone`` collects the key of every compensation that completed.
    """

    steps: int = 5
    booked: list[str] = []
    undone: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Sleep("warm_up", timedelta(0)),
            sf.For(
                "bookings",
                lambda: len(self.booked) < self.steps,
                sf.Step("book", self.book, compensate=self.unbook),
            ),
            sf.Step("pay", self.pay, retry=sf.RetryPolicy(max_attempts=1)),
        )

    def book(self) -> None:
        self.booked.append(record_step())

    def pay(self) -> None:
        record_step()
        raise RuntimeError("card declined")

    def unbook(self) -> None:
        key = record_step()
        time.sleep(WORK_SECONDS)
        self.undone.append(key)


# -- the schedule race's workflow ----------------------------------------------------------------


class Report(sf.WorkflowState):
    """One logged step: what each fire of a schedule starts."""

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("report", record_step))


# -- the lock race's workflow --------------------------------------------------------------------


class Guarded(sf.WorkflowState):
    """A timer (so workers run everything), then a `Lock` of ``slots`` slots on ``account``
    whose body logs its entry, works a little, and logs its exit."""

    account: str = "acct"
    slots: int = 1

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Sleep("warm_up", timedelta(0)),
            sf.Lock(
                "pay",
                lambda: self.account,
                sf.Step("enter", record_step),
                sf.Step("work", self.work),
                sf.Step("exit", record_step),
                limit=self.slots,
            ),
        )

    def work(self) -> None:
        record_step()
        time.sleep(0.05)


WORKFLOWS: list[type[sf.WorkflowState]] = [
    Crunch,
    Relay,
    Charge,
    Payer,
    Unwind,
    Report,
    Guarded,
]

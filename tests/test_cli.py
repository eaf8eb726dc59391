"""The ``stmtflow`` command line, driven with click's CliRunner and as a real console script.

Every bad input must end with exit code != 0, exactly one ``error: ...`` line on stderr, no
traceback, and the store exactly as it was (but for the fencing counter a refused ``send``'s
claim bumps; see tests/test_engine.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import stmtflow as sf
from stmtflow.cli import cli
from stmtflow.runtime import Engine
from stmtflow.runtime._loader import load_target
from stmtflow.stores import open_store

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = f"{ROOT / 'examples' / 'quickstart.py'}:Expense"
EXPENSE = '{"employee": "ada", "amount": 42.5, "description": "train ticket"}'

TIMERS = """
import stmtflow as sf

class Nap(sf.WorkflowState):
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Wait("nap", sf.On("wake", sf.Timer(seconds=0), sf.Step("up", self.up))),
        )

    def up(self) -> None:
        self.log.append("up")
"""

EXPENSE_V2 = """
import stmtflow as sf

class Expense(sf.WorkflowState):
    employee: str
    amount: float

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("submit", print), sf.Step("review_v2", print))
"""


class Other(sf.WorkflowState):
    """Another workflow type (the target of a bad ``run --id`` below)."""

    def definition(self) -> sf.Section:
        return sf.S(sf.Step("noop", print))


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def invoke(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db, *args], catch_exceptions=False)


def ok(db: str, *args: str) -> Result:
    result = invoke(db, *args)
    assert result.exit_code == 0, result.output
    return result


def snapshot(url: str) -> tuple[list[Any], dict[str, str]]:
    """Everything stored (fence excepted: claiming is not changing) and remembered targets."""
    with open_store(url) as store:
        records = [dataclasses.replace(r, fence=0) for r in store.list()]
        return records, store.targets()


@pytest.fixture
def seeded(db: str) -> str:
    """A store with a waiting expense ``exp-1`` and a finished one ``done-1``."""
    ok(db, "run", QUICKSTART, "--id", "exp-1", "--input", EXPENSE)
    ok(db, "run", QUICKSTART, "--id", "done-1", "--input", EXPENSE)
    ok(db, "send", "done-1", "reject", '{"approver": "grace"}')
    return db


# -- the newcomer's path ----------------------------------------------------------------------


def test_run_show_send_show_list(db: str) -> None:
    out = ok(db, "run", QUICKSTART, "--id", "exp-1", "--input", EXPENSE).output
    assert "exp-1 started (Expense): waiting; waits for approve, reject, escalate" in out

    shown = ok(db, "show", "exp-1").output
    for text in ("waiting", "review", "approver: string, comment?: string", "escalate", "(in 2d"):
        assert text in shown

    out = ok(db, "send", "exp-1", "approve", '{"approver": "grace", "comment": "ok"}').output
    assert "approve -> exp-1: finished" in out and '"approved by grace"' in out

    shown = ok(db, "show", "exp-1").output
    assert "finished" in shown and "paid 42.50 to ada" in shown and "Waiting for" not in shown

    listed = ok(db, "list").output
    assert "exp-1" in listed and "Expense" in listed and "finished" in listed


def test_json_output(db: str) -> None:
    started = json.loads(
        ok(db, "run", QUICKSTART, "--id", "e", "--input", EXPENSE, "--json").output
    )
    assert started["status"] == "waiting"
    assert [p["event"] for p in started["pending"]] == ["approve", "reject", "escalate"]
    assert started["pending"][0]["input_schema"]["required"] == ["approver"]
    assert started["pending"][2]["deadline"] is not None

    sent = json.loads(ok(db, "send", "e", "reject", '{"approver": "bob"}', "--json").output)
    assert sent == {"id": "e", "event": "reject", "output": "rejected by bob", "status": "finished"}

    shown = json.loads(ok(db, "show", "e", "--json").output)
    assert shown["data"]["outcome"] == "rejected" and shown["pending"] == []
    listed = json.loads(ok(db, "list", "--json").output)
    assert [(r["id"], r["status"]) for r in listed] == [("e", "finished")]


def test_run_is_idempotent_by_id(seeded: str) -> None:
    before = snapshot(seeded)
    out = ok(seeded, "run", QUICKSTART, "--id", "exp-1", "--input", EXPENSE).output
    assert "exp-1 exists already (Expense): waiting" in out
    assert snapshot(seeded) == before


def test_list_filters(seeded: str) -> None:
    waiting = ok(seeded, "list", "--status", "waiting").output
    assert "exp-1" in waiting and "done-1" not in waiting
    assert "no instances" in ok(seeded, "list", "--workflow", "Other").output


def test_cancel(seeded: str) -> None:
    assert ok(seeded, "cancel", "exp-1").output == "exp-1: cancelled\n"
    assert "cancelled" in ok(seeded, "show", "exp-1").output


def test_restart_a_failed_instance(tmp_path: Path, db: str) -> None:
    flag = tmp_path / "fixed"
    source = tmp_path / "fragile.py"
    source.write_text(
        "import pathlib\nimport stmtflow as sf\n\n"
        "class Fragile(sf.WorkflowState):\n"
        "    def definition(self) -> sf.Section:\n"
        "        return sf.S(sf.Step('call', self.call, retry=sf.RetryPolicy(max_attempts=1)))\n\n"
        "    def call(self) -> None:\n"
        f"        if not pathlib.Path({str(flag)!r}).exists():\n"
        "            raise ConnectionError('service down')\n"
    )
    out = ok(db, "run", f"{source}:Fragile", "--id", "f-1").output
    assert "f-1 started (Fragile): failed" in out and "service down" in out
    assert "service down" in ok(db, "show", "f-1").output
    flag.touch()
    assert ok(db, "restart", "f-1").output == "f-1: finished\n"


def test_worker_once_fires_due_timers(tmp_path: Path, db: str) -> None:
    source = tmp_path / "nap.py"
    source.write_text(TIMERS)
    assert "waiting" in ok(db, "run", f"{source}:Nap", "--id", "n-1").output
    assert "processed 1, fired 1, failed 0" in ok(db, "worker", "--once").output
    assert json.loads(ok(db, "show", "n-1", "--json").output)["data"]["log"] == ["up"]
    assert "processed 0" in ok(db, "worker", f"{source}:Nap", "--once").output


def test_graph(seeded: str, tmp_path: Path) -> None:
    plain = ok(seeded, "graph", QUICKSTART).output
    assert plain.startswith("flowchart TD") and "review" in plain
    live = ok(seeded, "graph", QUICKSTART, "--id", "exp-1").output
    assert "class" in live and live != plain
    assert ok(seeded, "graph", QUICKSTART, "--format", "dot").output.startswith("digraph")
    out = tmp_path / "def.json"
    ok(seeded, "graph", QUICKSTART, "--format", "json", "-o", str(out))
    assert json.loads(out.read_text())["type"] == "Section"


def test_check(seeded: str, tmp_path: Path) -> None:
    assert "OK: all 1 instances fit" in ok(seeded, "check", QUICKSTART).output
    v2 = tmp_path / "expense_v2.py"
    v2.write_text(EXPENSE_V2)
    result = invoke(seeded, "check", f"{v2}:Expense")
    assert result.exit_code == 1 and "exp-1" in result.stdout and "review" in result.stdout
    assert result.stderr.startswith("error: ")

    state = tmp_path / "exp-1.json"
    state.write_text(ok(seeded, "show", "exp-1", "--json").output)
    result = CliRunner().invoke(cli, ["check", f"{v2}:Expense", str(state)])
    assert result.exit_code == 1 and "exp-1 (" in result.stdout

    old, new = tmp_path / "old.json", tmp_path / "new.json"
    ok(seeded, "graph", QUICKSTART, "--format", "json", "-o", str(old))
    ok(seeded, "graph", f"{v2}:Expense", "--format", "json", "-o", str(new))
    result = invoke(seeded, "check", "--diff", str(old), str(new))
    assert result.exit_code == 1 and "removed Wait 'review'" in result.stdout
    assert ok(seeded, "check", "--diff", str(old), str(old)).output.startswith("no differences")


# -- bad input --------------------------------------------------------------------------------

BAD = {
    "unknown-file": ["run", "nowhere/missing.py:Expense"],
    "unknown-class": ["run", QUICKSTART.replace(":Expense", ":Nope")],
    "not-a-workflow": ["run", QUICKSTART.replace(":Expense", ":Decision")],
    "unknown-module": ["run", "no_such_module_here:Expense"],
    "malformed-target": ["run", "examples/quickstart.py"],
    "invalid-json": ["run", QUICKSTART, "--input", "{employee: ada}"],
    "input-not-object": ["run", QUICKSTART, "--input", "[1, 2]"],
    "invalid-data": ["run", QUICKSTART, "--input", '{"employee": "ada", "amount": -1}'],
    "id-of-other-type": ["run", f"{ROOT / 'tests' / 'test_cli.py'}:Other", "--id", "exp-1"],
    "send-unknown-id": ["send", "ghost", "approve", '{"approver": "grace"}'],
    "send-unknown-event": ["send", "exp-1", "pay_me", "{}"],
    "send-bad-input": ["send", "exp-1", "approve", '{"approver": ""}'],
    "send-missing-field": ["send", "exp-1", "approve", '{"comment": "hi"}'],
    "send-invalid-json": ["send", "exp-1", "approve", "{approver}"],
    "send-unknown-thread": ["send", "exp-1", "approve", '{"approver": "g"}', "--thread", "t9"],
    "send-finished": ["send", "done-1", "approve", '{"approver": "grace"}'],
    "show-unknown-id": ["show", "ghost"],
    "cancel-unknown-id": ["cancel", "ghost"],
    "cancel-finished": ["cancel", "done-1"],
    "restart-not-failed": ["restart", "exp-1"],
    "restart-unknown-id": ["restart", "ghost"],
    "invalid-status": ["list", "--status", "sleeping"],
    "graph-unknown-id": ["graph", QUICKSTART, "--id", "ghost"],
    "graph-bad-format": ["graph", QUICKSTART, "--format", "gif"],
    "missing-argument": ["send", "exp-1"],
    "unknown-command": ["frobnicate"],
}


@pytest.mark.parametrize("args", list(BAD.values()), ids=list(BAD))
def test_bad_input_is_one_error_line_and_changes_nothing(seeded: str, args: list[str]) -> None:
    before = snapshot(seeded)
    result = CliRunner().invoke(cli, ["--db", seeded, *args])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert snapshot(seeded) == before


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////nonexistent-dir/stmtflow.db",
        "postgresql://nobody@127.0.0.1:1/none",
        "mysql://db.example/x",
        "not a url",
    ],
)
@pytest.mark.parametrize("command", [["list"], ["show", "exp-1"], ["run", QUICKSTART]])
def test_unreachable_database(seeded: str, url: str, command: list[str]) -> None:
    before = snapshot(seeded)
    args = [*command, "--input", EXPENSE] if command[0] == "run" else command
    result = CliRunner().invoke(cli, ["--db", url, *args])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert snapshot(seeded) == before


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    result = CliRunner().invoke(cli, ["--db", url, "show", "exp-1"])
    assert result.exit_code == 1 and result.stderr.startswith("error: no database at")
    assert not (tmp_path / "absent.db").exists()


def test_instance_without_a_remembered_target(db: str) -> None:
    Expense = load_target(QUICKSTART)
    with Engine(db, workflows=[Expense]) as engine:
        engine.start(Expense, {"employee": "ada", "amount": 1}, id="e-1")
    before = snapshot(db)
    result = invoke(db, "show", "e-1")
    assert result.exit_code == 1 and "remembers no target for Expense" in result.stderr
    assert snapshot(db) == before


def test_db_from_the_environment(seeded: str) -> None:
    result = CliRunner(env={"STMTFLOW_DB": seeded}).invoke(cli, ["list"])
    assert result.exit_code == 0 and "exp-1" in result.output


# -- the installed console script -------------------------------------------------------------


def _command() -> list[str]:
    script = Path(sys.executable).parent / "stmtflow"
    if script.exists():
        return [str(script)]
    found = shutil.which("stmtflow")
    return [found] if found else [sys.executable, "-m", "stmtflow.cli"]


def test_console_script_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "STMTFLOW_DB": "sqlite:///demo.db"}

    def stmtflow(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*_command(), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == code, done.stderr
        return done

    stmtflow("run", QUICKSTART, "--id", "exp-1", "--input", EXPENSE)
    assert "waiting" in stmtflow("show", "exp-1").stdout
    stmtflow("send", "exp-1", "approve", '{"approver": "grace"}')
    assert "finished" in stmtflow("show", "exp-1").stdout
    assert "exp-1" in stmtflow("list").stdout
    bad = stmtflow("send", "exp-1", "approve", "{oops", code=1)
    assert bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1
    assert (tmp_path / "demo.db").exists()


def test_python_dash_m(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stmtflow.cli", "--db", "memory://", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "no instances\n")


ORDER_PAYMENT = f"{ROOT / 'examples' / 'order_payment.py'}:Order"


def test_children_are_shown_listed_and_drawn(db: str) -> None:
    ok(db, "run", ORDER_PAYMENT, "--input", '{"item": "cup", "amount": 3}', "--id", "o1")
    child = "o1/pay.child@3"
    shown = json.loads(ok(db, "show", "o1", "--json").output)
    assert [(c["id"], c["status"], c["parent_id"]) for c in shown["children"]] == [
        (child, "waiting", "o1")
    ]
    assert child in ok(db, "show", "o1").output
    listed = json.loads(ok(db, "list", "--parent", "o1", "--json").output)
    assert [r["id"] for r in listed] == [child]
    assert json.loads(ok(db, "list", "--parent", "nobody", "--json").output) == []
    drawn = ok(db, "graph", ORDER_PAYMENT, "--id", "o1").output
    assert f"Call pay<br>→ Payment<br>child {child}: waiting" in drawn
    # The child's event, sent from the command line, wakes the parent (loaded from its target).
    ok(db, "send", child, "bank_answer", "true")
    assert json.loads(ok(db, "show", "o1", "--json").output)["status"] == "finished"


# -- failures: the caught error and the compensation log ------------------------------------


SAGA = f"{ROOT / 'examples' / 'booking_saga.py'}:Trip"


def test_show_prints_the_compensation_log_and_the_failure(db: str) -> None:
    out = ok(
        db, "run", SAGA, "--id", "t-2", "--input", '{"traveller": "grace", "cars_left": false}'
    )
    assert "failed" in out.output
    shown = ok(db, "show", "t-2").output
    assert "Compensations" in shown
    lines = [line for line in shown.splitlines() if "done" in line and "book_" in line]
    assert ["book_hotel" in lines[0], "book_flight" in lines[1]] == [True, True]
    assert "NoCarsLeft: no car left for" in shown
    state = json.loads(ok(db, "show", "t-2", "--json").output)["state"]
    assert [c["step"] for c in state["compensated"]] == ["book_hotel", "book_flight"]


def test_show_prints_the_caught_error(db: str) -> None:
    ok(db, "run", SAGA, "--id", "t-3", "--input", '{"traveller": "alan", "card_ok": false}')
    shown = ok(db, "show", "t-3").output
    assert "Caught" in shown and "CardDeclined: insufficient funds" in shown
    assert "'charge_card', attempt 1" in shown
    assert shown.count("done") >= 3  # the car, the hotel and the flight were given back


def test_cancel_with_compensate(db: str, tmp_path: Path) -> None:
    target = tmp_path / "hold.py"
    target.write_text(
        "import stmtflow as sf\n"
        "class Hold(sf.WorkflowState):\n"
        "    log: list[str] = []\n"
        "    def definition(self):\n"
        "        return sf.S(\n"
        "            sf.Step('reserve', lambda: self.log.append('r'),\n"
        "                    compensate=lambda: self.log.append('undo r')),\n"
        "            sf.Wait('confirm', sf.OnEvent('ok', lambda _: None)),\n"
        "        )\n"
    )
    ok(db, "run", f"{target}:Hold", "--id", "h-1")
    out = ok(db, "cancel", "h-1", "--compensate").output
    assert "h-1: cancelled (1 compensation(s) ran)" in out
    shown = json.loads(ok(db, "show", "h-1", "--json").output)
    assert shown["data"]["log"] == ["r", "undo r"]


ASKING = """
from datetime import timedelta
from pydantic import BaseModel
import stmtflow as sf

class Form(BaseModel):
    approve: bool

class Claim(sf.WorkflowState):
    manager: str = "maria"
    log: list[str] = []

    def definition(self) -> sf.Section:
        return sf.S(
            sf.Ask("review", Form, self.answer, prompt="Approve the claim?",
                   assignee=self.manager, timeout=timedelta(days=3)),
            sf.Step("sync", self.sync,
                    retry=sf.RetryPolicy(max_attempts=1, on_exhausted="escalate")),
        )

    def answer(self, form: Form) -> None:
        self.log.append(f"approve={form.approve}")

    def sync(self) -> None:
        raise ConnectionError("ledger down")
"""


def test_inputs_lists_answers_and_escalations(tmp_path: Path, db: str) -> None:
    (tmp_path / "asking.py").write_text(ASKING)
    target = f"{tmp_path / 'asking.py'}:Claim"
    ok(db, "run", target, "--id", "c-1")
    ok(db, "run", target, "--id", "c-2", "--input", '{"manager": "bo"}')
    table = ok(db, "inputs").output
    for part in ("c-1", "c-2", "review.answer", "maria", "bo", "Approve", "boolean"):
        assert part in table
    mine = json.loads(ok(db, "inputs", "--assignee", "bo", "--json").output)
    assert [(r["instance_id"], r["event"], r["assignee"]) for r in mine] == [
        ("c-2", "review.answer", "bo")
    ]
    assert mine[0]["input_schema"]["required"] == ["approve"] and mine[0]["deadline"]
    assert json.loads(ok(db, "inputs", "--workflow", "Nope", "--json").output) == []
    bad = invoke(db, "send", "c-1", "review.answer", '{"approve": "yes"}')
    assert bad.exit_code == 1 and "'yes' is not of type 'boolean'" in bad.output
    ok(db, "send", "c-1", "review.answer", '{"approve": true}')
    rows = json.loads(ok(db, "inputs", "--json").output)
    assert [(r["instance_id"], r["event"]) for r in rows] == [
        ("c-2", "review.answer"),
        ("c-1", "sync.escalation"),
    ]
    shown = ok(db, "show", "c-1").output
    assert "Escalated: waits for an operator (sync.escalation)" in shown
    assert "ConnectionError: ledger down" in shown
    assert """stmtflow send c-1 sync.escalation '{"action": "retry"}'""" in shown
    pending = json.loads(ok(db, "show", "c-1", "--json").output)["pending"]
    assert pending[0]["prompt"].startswith("step 'sync' failed after 1 attempt(s)")
    ok(db, "send", "c-1", "sync.escalation", '{"action": "skip"}')
    assert [r["instance_id"] for r in json.loads(ok(db, "inputs", "--json").output)] == ["c-2"]
    ok(db, "cancel", "c-2")
    assert ok(db, "inputs").output == "nobody is asked for anything\n"


FLAKY = """
import stmtflow as sf

class Flaky(sf.WorkflowState):
    def definition(self) -> sf.Section:
        return sf.S(sf.Step("boom", self.boom))

    def boom(self) -> None:
        raise RuntimeError("card declined")
"""


@pytest.mark.parametrize(("level", "shown"), [("warning", True), ("error", False)])
def test_log_level_shows_failed_steps_on_stderr(
    tmp_path: Path, db: str, level: str, shown: bool
) -> None:
    """The library logs through a NullHandler only; the command line prints its records."""
    (tmp_path / "flaky.py").write_text(FLAKY)
    result = CliRunner().invoke(
        cli, ["--db", db, "--log-level", level, "run", f"{tmp_path / 'flaky.py'}:Flaky"]
    )
    assert ("step failed" in result.stderr and "card declined" in result.stderr) is shown
    assert "step failed" not in result.stdout

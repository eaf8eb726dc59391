"""The examples a newcomer copies run as scripts and do what their docstrings say."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

import stmtflow as sf

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str, folder: Path, *args: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *(args or [str(folder)])],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def saved_states(folder: Path) -> dict[str, sf.State]:
    return {
        path.name.removesuffix(".state.json"): sf.load_state(path.read_text())
        for path in sorted(folder.glob("*.state.json"))
    }


def test_order_example(tmp_path: Path) -> None:
    out = run_example("order.py", tmp_path)
    assert "refused: HandlerError" in out
    assert "refused: CallbackInputError" in out
    assert "handler answered 'thank you'" in out
    assert "shipped the teapot" in out
    assert "released the kettle" in out
    states = saved_states(tmp_path)
    assert set(states) == {"order-1", "order-2"}
    assert {s.status for s in states.values()} == {sf.WorkflowStatus.FINISHED}


def test_approval_example(tmp_path: Path) -> None:
    out = run_example("approval.py", tmp_path)
    assert "published 'Travel policy 2024'" in out
    assert "sent 'Company car for everyone' back" in out
    assert "legal_verdict refused: WorkflowFinished" in out
    states = saved_states(tmp_path)
    assert set(states) == {"doc-1", "doc-2"}
    assert all(s.status is sf.WorkflowStatus.FINISHED for s in states.values())


def test_expense_form_example(tmp_path: Path) -> None:
    out = run_example("expense_form.py", tmp_path)
    assert "maria's inputs: 2" in out
    assert "refused: approve: 'yes' is not of type 'boolean'" in out
    assert "paid 150 EUR (approved by maria)" in out
    assert "forwarded to finance" in out and "finance's inputs: 1" in out
    assert "rejected by finance: chairs come from facilities" in out
    assert out.rstrip().endswith("left to answer: 0")
    with sf.Engine(f"sqlite:///{tmp_path / 'expenses.db'}") as engine:
        assert {r.status for r in engine.store.list()} == {"finished"}


def test_flaky_escalation_example(tmp_path: Path) -> None:
    out = run_example("flaky_escalation.py", tmp_path)
    assert "ledger calls: 9" in out
    assert "operator's queue: 3" in out and "operator's queue: 0" in out
    assert "inv-1 is waiting: _main_/book (attempt 3): ConnectionError" in out
    assert "refused: action: 'retry tomorrow' is not one of" in out
    assert "booked as L-inv-1-100" in out
    assert "inv-2 (finished):\n    - sent invoice inv-2" in out  # skipped: never booked
    assert "inv-3 (failed)" in out and "an operator chose to fail it" in out


@pytest.mark.parametrize(
    "name", ["order.py", "approval.py", "expense_form.py", "flaky_escalation.py"]
)
def test_examples_default_to_a_fresh_temporary_folder(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    [folder] = [p for p in tmp_path.iterdir() if p.is_dir()]
    if name in ("order.py", "approval.py"):  # JSON files per workflow
        assert len(saved_states(folder)) == 2
    else:  # an engine's SQLite store
        assert [p.suffix for p in folder.glob("*.db")] == [".db"]


def test_notification_fanout_example(tmp_path: Path) -> None:
    out = run_example("notification_fanout.py", tmp_path)
    assert "started: notify[0], notify[1], notify[2] (sent so far: ada, grace, alan)" in out
    assert "alive: notify[3], notify[4], notify[5]" in out
    assert "'Release 1.0' delivered to 7:" in out
    assert "finished: every subscriber notified once; state threads left: 0" in out


def test_supplier_quote_example(tmp_path: Path) -> None:
    out = run_example("supplier_quote.py", tmp_path)
    assert "asked acme for a quote\nasked globex for a quote\nwaiting on: acme, globex" in out
    assert "withdrew request rfq-1/acme from acme" in out
    assert "accepted the quote of globex for 500 teapots" in out
    assert "status finished; threads left: []" in out
    assert "late quote from acme refused: WorkflowFinished" in out


@pytest.mark.redis
def test_redis_store_example(redis_server: str, tmp_path: Path) -> None:
    out = run_example("redis_store.py", tmp_path, redis_server)
    lines = out.splitlines()
    assert len([line for line in lines if ": finished: packed parcel" in line]) == 6
    assert "told the customer about parcel 5" in out
    assert lines[-1] == "steps run: 12, each once: True"


@pytest.mark.nats
def test_nats_example(tmp_path: Path, nats_server: str) -> None:
    out = run_example("nats_store.py", tmp_path, nats_server)  # its own bucket, deleted after
    assert "reminder sent for 'printer on fire'" in out
    assert "fired a day later: 1" in out
    assert "finished: finished, reminded True, answer 'it was the toner'" in out
    assert "listed as finished: ['ticket-1']" in out


@pytest.mark.parametrize(
    "store",
    [
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
    ],
)
def test_order_payment_example(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = [] if store == "sqlite" else [str(request.getfixturevalue(f"{store}_url"))]
    out = run_example("order_payment.py", tmp_path, str(tmp_path), *url)
    assert "payment order-1/pay.child@3 ended finished: {'approved': True}" in out
    assert "shipped the teapot" in out
    assert "payment order-2/pay.child@3 ended timed_out" in out
    assert "released the kettle (timed_out)" in out
    assert "order-2/pay.child@3 is cancelled; order-2 is finished" in out
    states = saved_states(tmp_path)
    assert set(states) == {"order-1", "order-2", "order-1_pay.child@3", "order-2_pay.child@3"}
    assert states["order-2_pay.child@3"].status is sf.WorkflowStatus.CANCELLED


def test_booking_saga_example(tmp_path: Path) -> None:
    out = run_example("booking_saga.py", tmp_path)
    trip2 = out.split("trip-2:")[1].split("trip-3:")[0]
    assert trip2.index("cancelled hotel-2") < trip2.index("cancelled flight-2")
    assert "-> failed; compensated: book_hotel, book_flight" in trip2
    assert "NoCarsLeft: no car left for grace" in trip2
    trip3 = out.split("trip-3:")[1]
    assert "told alan: payment declined (insufficient funds)" in trip3
    assert "-> finished; compensated: rent_car, book_hotel, book_flight" in trip3
    assert "still booked with the suppliers: flight-1:ada to Lisbon, hotel-1:3 nights" in out
    with sf.Engine(f"sqlite:///{tmp_path / 'trips.db'}") as engine:
        statuses = {r.id: r.status for r in engine.store.list()}
    assert statuses == {"trip-1": "finished", "trip-2": "failed", "trip-3": "finished"}


def test_service_example_starts_answers_healthz_and_stops(tmp_path: Path) -> None:
    """examples/service/app.py: one command starts the service (samples, worker, web page)."""
    import httpx

    from tests.test_http_browser import start_service, stop_service

    proc, base = start_service(tmp_path)
    try:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        listed = httpx.get(f"{base}/instances").json()["items"]
        assert [i["id"] for i in listed] == ["expense-1", "expense-2", "expense-3"]
        assert httpx.get(f"{base}/ui/").status_code == 200
    finally:
        stop_service(proc)
    # uvicorn shuts down on SIGTERM, then re-raises the signal: the exit says what ended it.
    assert proc.returncode in (0, -15)
    assert (tmp_path / "service.db").exists()


def test_asl_order_example(tmp_path: Path) -> None:
    out = run_example("asl_order.py", tmp_path)
    assert "order-1: finished, shipped" in out
    assert "order-2: failed, OrderRefused: order order-2 refused" in out
    assert "order-3: finished, shipped" in out
    assert "order-1: charged 41" in out  # a teapot (25) and four cups (4 each)
    assert "reserved 9 x kettle" not in out  # out of stock: the Map's Catch refused it
    with sf.Engine(f"sqlite:///{tmp_path / 'orders.db'}") as engine:
        records = {r.id: r.status for r in engine.store.list()}
    assert records == {"order-1": "finished", "order-2": "failed", "order-3": "finished"}


@pytest.mark.redis
def test_outbox_redis_example(redis_server: str, tmp_path: Path) -> None:
    out = run_example("outbox_redis.py", tmp_path, redis_server, str(tmp_path))
    assert "inv-2 after its first attempt: waiting" in out
    assert "left in the outbox: 0" in out
    got = out.split("got:\n", 1)[1].splitlines()
    # One message per invoice: the failed first attempt of inv-2 emitted nothing that counts.
    assert got == [
        '  inv-1/_main_/issue/1/0  invoices.issued  {"customer":"acme","amount":120}',
        '  inv-2/_main_/issue/1/0  invoices.issued  {"customer":"globex","amount":75}',
    ]


@pytest.mark.parametrize(
    "store",
    [
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
    ],
)
def test_operations_history_example(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    args = (
        [str(tmp_path)]
        if store == "sqlite"
        else [str(tmp_path), request.getfixturevalue(f"{store}_url")]
    )
    out = run_example("operations_history.py", tmp_path, *args)
    assert "3 +" in out and "retry_scheduled charge attempt 1 - RuntimeError: card declined" in out
    assert "rewound order-1 to event 4: waiting" in out
    assert (
        "order-1 after the rewind: ['reserved the teapot', 'charged', 'shipped parcel P-42']" in out
    )
    assert "forked order-1-copy: waiting, waits for ['confirmed']" in out
    assert "stuck: nothing" in out
    assert "pruned 1 ended order(s); left: ['order-1-copy', 'order-2']" in out


def test_dag_pipeline_example(tmp_path: Path) -> None:
    out = run_example("dag_pipeline.py", tmp_path)
    night1, night2 = out.split("night-2:\n")
    assert "using yesterday's cached rates" in night1
    assert "-> finished" in night1 and "'rates': {'usd_eur': 0.9}" in night1
    assert "'notify': 'told #sales about night-1'" in night1
    assert night2.index("published night-2") < night2.index("took down the report of night-2")
    assert "-> failed" in night2 and "PermissionError: chat: the bot was removed" in night2
    assert "compensated: publish" in night2
    assert out.rstrip().endswith("on the wiki: night-1: 180.0 EUR")
    with sf.Engine(f"sqlite:///{tmp_path / 'reports.db'}") as engine:
        statuses = {r.id: r.status for r in engine.store.list()}
    assert statuses == {"night-1": "finished", "night-2": "failed"}


def test_nightly_schedule_example(tmp_path: Path) -> None:
    out = run_example("nightly_schedule.py", tmp_path)
    assert "Fri 27 Mar 02:30 Paris: started nightly-sales@2026-03-27T01:30:00Z" in out
    assert "Sun 29 Mar 03:00 Paris: started nightly-sales@2026-03-29T01:00:00Z" in out  # DST gap
    assert "Mon 30 Mar 07:00 Paris: started nightly-sales@2026-03-30T00:30:00Z" in out  # catch-up
    first, last = "nightly-sales@2026-03-23T01:30:00Z", "nightly-sales@2026-03-28T01:30:00Z"
    assert f"6 fires from {first} to {last}: 4 new" in out
    assert "Tue 31 Mar 02:30 Paris: started nothing" in out
    assert "schedules left: []" in out


def test_account_lock_example(tmp_path: Path) -> None:
    out = run_example("account_lock.py", tmp_path)
    first, after_confirm, after_cancel = out.split("\n", 1)[1].split(":\n")[:3]
    assert "p-1: waiting, debited=True" in first  # the first payout of A holds the lock
    assert "p-2: waiting, debited=False" in first and "p-3: waiting, debited=False" in first
    assert "q-1: waiting, debited=True" in first  # another account does not wait
    assert "p-1: finished, debited=True, paid=True" in after_confirm
    assert "p-2: waiting, debited=True" in after_confirm  # it came before p-3
    assert "p-3: waiting, debited=False" in after_confirm
    assert "p-2: cancelled" in after_cancel and "p-3: waiting, debited=True" in after_cancel


@pytest.mark.redis
@pytest.mark.slow  # a dozen `stmtflow` processes, one after the other
def test_nightly_report_example_operates_a_schedule_from_the_command_line(
    redis_server: str, tmp_path: Path
) -> None:
    """examples/nightly_report/run.sh: schedule, backfill and trigger fires, a worker that
    publishes to a Redis stream, then history, rewind and prune, all with the CLI."""
    import redis

    stream = f"stmtflow_test_{os.getpid()}_{secrets.token_hex(4)}_nightly"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "STMTFLOW": f"{sys.executable} -m stmtflow.cli",
        "PYTHON": sys.executable,
        "REDIS_URL": redis_server,
        "STREAM": stream,
    }
    try:
        done = subprocess.run(
            ["sh", str(EXAMPLES / "nightly_report" / "run.sh"), str(tmp_path)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        with redis.Redis.from_url(redis_server, decode_responses=True) as client:
            entries = [fields for _, fields in client.xrange(stream)]
    finally:
        with redis.Redis.from_url(redis_server) as client:
            client.delete(stream)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout

    night1, night2 = "nightly-report@2026-03-01T01:30:00Z", "nightly-report@2026-03-02T01:30:00Z"
    assert f"2 fire(s) of nightly-report: {night1}, {night2}" in out
    [triggered] = re.findall(r"started (nightly-report@\S+) \(NightlyReport\): waiting", out)
    # Every fire's instance ended (the worker ran the retries), and each published once.
    before_rewind = out.split("rewound to event 2")[0]
    assert before_rewind.count("│ finished │") == 3
    assert "processed 3" in out
    day = triggered.partition("@")[2][:10]
    total = 1000 + 10 * sum(int(c) for c in day if c.isdigit())
    assert [(e["instance"], e["topic"], json.loads(e["payload"])["text"]) for e in entries] == [
        (night1, "reports.nightly", "EU sales on 2026-03-01: 1140 EUR"),
        (night2, "reports.nightly", "EU sales on 2026-03-02: 1150 EUR"),
        (triggered, "reports.nightly", f"EU sales on {day}: {total} EUR"),
    ]
    assert [e["key"] for e in entries] == [
        f"{i}/_main_/publish/6/0" for i in (night1, night2, triggered)
    ]
    assert out.rstrip().endswith(
        f"{triggered}/_main_/publish/6/0  reports.nightly  {entries[2]['payload']}"
    )

    with sf.Engine(f"sqlite:///{tmp_path / 'nightly.db'}") as engine:
        # Prune deleted the two ended instances with their history; the rewound one is kept.
        assert [r.id for r in engine.store.list()] == [night1]
        record = engine.store.get(night1)
        assert record.status == "resuming"  # back before `render`, due for a worker
        data = json.loads(record.data)
        assert (data["total"], data["text"]) == (1140, "")  # as right after `gather`
        kinds = [(e.seq, e.kind, e.name) for e in engine.history(night1)]
        assert kinds[1] == (2, "step_completed", "gather")
        assert kinds[-2:] == [(6, "finished", None), (7, "rewound", None)]
        assert engine.history(night1)[-1].detail == {"to": 2}
        assert engine.outbox_messages() == []
        [schedule] = engine.schedules()
        assert (schedule.name, schedule.last_id) == ("nightly-report", triggered)
    assert "pruned 2 ended instance(s)" in out

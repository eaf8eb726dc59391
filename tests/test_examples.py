"""The examples a newcomer copies run as scripts and do what their docstrings say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import stmtflow as sf

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str, folder: Path) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), str(folder)],
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


@pytest.mark.parametrize("name", ["order.py", "approval.py"])
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
    assert len(saved_states(folder)) == 2


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

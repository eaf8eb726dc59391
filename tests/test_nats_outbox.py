"""The NATS store's outbox beyond the shared suite (tests/test_outbox.py): rows committed in the
writer's intent and put in the outbox stream after, a claim that reads the due messages only,
and index entries that a crash cannot leave a message without."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stmtflow.stores import Batch, Record, open_store
from stmtflow.stores import _nats_outbox as outbox
from stmtflow.stores._outbox import OutboxMessage
from stmtflow.stores.base import utcnow
from tests.test_nats_intents import dying

pytestmark = pytest.mark.nats

LEASE = timedelta(seconds=30)


@pytest.fixture
def store(nats_url: str) -> Iterator[Any]:
    with open_store(nats_url) as opened:
        yield opened


def emit(store: Any, id: str, n: int) -> Any:
    """One write of ``id`` whose steps emitted ``n`` messages."""
    current = store.get(id)
    rows = tuple(
        OutboxMessage(
            key=f"{id}/_main_/s/{current.version}/{i}",
            topic="t",
            payload=str(i),
            instance_id=id,
            thread_id="_main_",
            step="s",
        )
        for i in range(n)
    )
    return store.update(current, expected_version=current.version, batch=Batch(emit=rows))


def counting_states(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seqs whose delivery state the store reads from now on."""
    reads: list[int] = []
    real = outbox._state

    async def counted(c: Any, names: Any, seq: int) -> Any:
        reads.append(seq)
        return await real(c, names, seq)

    monkeypatch.setattr(outbox, "_state", counted)
    return reads


def test_rows_of_a_writer_that_died_before_putting_them_are_put_by_the_next_claim(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(Record(id="a", workflow="W", data="{}", state="{}", status="waiting"))
    with dying(monkeypatch):
        emit(store, "a", 2)  # committed in the record's intent, not put in the outbox
    assert store.outbox() == [] and store.outbox_claim(utcnow(), LEASE) == []
    store.claim_due(utcnow(), "w", LEASE)  # the record is due for its intent: finished
    claimed = store.outbox_claim(utcnow(), LEASE)
    assert [m.payload for m in claimed] == ["0", "1"]
    emit_again = store._run("finish again", lambda c: outbox.put(c, claimed))
    assert emit_again is None and len(store.outbox()) == 2  # a key stored is left as it is
    assert store.outbox_claim(utcnow(), LEASE) == []  # claimed: not due until the lease lapses


def test_a_claim_reads_the_due_messages_only(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store.create(Record(id="a", workflow="W", data="{}", state="{}", status="waiting"))
    emit(store, "a", 20)
    now = utcnow()
    failed = store.outbox_claim(now, LEASE, limit=18)
    store.outbox_retry([m.seq for m in failed], now + timedelta(hours=1), "sink: down")
    reads = counting_states(monkeypatch)
    due = store.outbox_claim(now, LEASE)
    assert [m.payload for m in due] == ["18", "19"]
    assert sorted(reads) == [m.seq for m in due]  # the 18 retried later are not read
    later = store.outbox_claim(now + timedelta(hours=1), LEASE)  # every claim has lapsed
    assert [m.payload for m in later] == [str(i) for i in range(20)]
    assert {(m.attempts, m.last_error) for m in later[:18]} == {(1, "sink: down")}


def test_a_claim_that_died_before_its_state_write_leaves_the_message_due(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(Record(id="a", workflow="W", data="{}", state="{}", status="waiting"))
    emit(store, "a", 1)
    real = outbox._publish

    async def dies(c: Any, subject: str, value: bytes, last: int | None = None) -> Any:
        if ".oq." in subject:
            raise OSError("the claimer died")
        return await real(c, subject, value, last)

    with monkeypatch.context() as patch:
        patch.setattr(outbox, "_publish", dies)
        with pytest.raises(Exception, match="the claimer died"):
            store.outbox_claim(utcnow(), LEASE)  # its new due entry is put, its state not
    [message] = store.outbox_claim(utcnow(), LEASE)
    assert message.payload == "0"
    store.outbox_sent([message.seq])
    assert store.outbox() == []
    bucket = store.settings.bucket
    left = store._run(
        "list", lambda c: c.subjects(f"STMTFLOW_{bucket}_OUTDUE", f"stmtflow.{bucket}.od.>")
    )
    assert left == []  # sent: its entries are gone too


def test_messages_outlive_their_pruned_instance(store: Any) -> None:
    created = store.create(Record(id="a", workflow="W", data="{}", state="{}", status="waiting"))
    emit(store, "a", 1)
    ended = store.get("a")
    store.update(dataclasses.replace(ended, status="finished"), expected_version=ended.version)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert store.prune(later, now=later) == ["a"] and created.id == "a"
    assert [m.instance_id for m in store.outbox_claim(utcnow(), LEASE)] == ["a"]


KILLED = """
import os, signal, sys, time
from datetime import timedelta
import stmtflow as sf
from stmtflow.stores.nats import NatsStore


class Paid(sf.WorkflowState):
    def definition(self):
        return sf.S(sf.Step("pay", self.pay), sf.Step("done", lambda: None))

    def pay(self):
        sf.emit("paid", {"amount": 3})


async def die(self, c, written):  # right after the write that commits the intent
    os.kill(os.getpid(), signal.SIGKILL)


lease = timedelta(seconds=1)
if sys.argv[2] == "crash":
    NatsStore._finish = die
    sf.Engine(sys.argv[1], workflows=[Paid], lease=lease).start(Paid, id="p")
else:
    time.sleep(1.2)  # the dead unit's lease lapses
    got = []
    with sf.Engine(sys.argv[1], workflows=[Paid], sinks=[got.append], lease=lease) as engine:
        engine.tick()  # claims the record, finishing its intent: the message is put
        engine.deliver_outbox()
        print([(m.key, m.topic, m.value) for m in got], engine.get("p").status.value)
"""


def test_a_sigkill_after_the_commit_before_the_outbox_put_delivers_once_after_a_tick(
    nats_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED))
    died = subprocess.run([sys.executable, str(script), nats_url, "crash"], check=False)
    assert died.returncode == -9
    with open_store(nats_url) as store:
        assert store.outbox() == []  # committed in the record's intent only
        assert store._run("read", lambda c: c.read("p")).mail.intent is not None
    run = [sys.executable, str(script), nats_url, "resume"]
    out = subprocess.run(run, check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[('p/_main_/pay/1/0', 'paid', {'amount': 3})] finished"
    with open_store(nats_url) as store:
        assert store.outbox() == []  # delivered, then deleted

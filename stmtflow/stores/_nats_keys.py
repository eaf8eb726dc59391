"""Names and encodings of the NATS store: record keys, index subjects, the stored JSON.

Everything lives under one bucket name ``B``:

- KV bucket ``B`` (stream ``KV_B``): ``i.<id>`` one record each (the source of truth),
  ``t.<workflow>`` the target registry, ``meta.schema`` the layout version.
- Stream ``STMTFLOW_B_DUE``, subjects ``stmtflow.B.due.<minute>.<k>.<t>.<id>.<v>``: "instance
  ``id`` may be due in that minute of wake-up time", put by the writer of version ``v`` before
  it wrote the record; and ``stmtflow.B.slot.<hour>.<minute>``, a marker per minute that may
  hold entries. ``<k>.<t>`` is where the entry sorts in claim order: ``1.<wake-up>`` or, for
  resuming work without one, ``0.<creation time>`` (in microseconds), so a tick orders a slot's
  entries without reading their records.
- Stream ``STMTFLOW_B_RESUMING``, ``stmtflow.B.resuming.<k>.<t>.<id>.<v>``: the same for the
  ``resuming`` slot (status ``resuming``: claimable whatever its wake-up).
- Stream ``STMTFLOW_B_HOURS``, ``stmtflow.B.hour.<hour>``: a marker per hour that may hold
  minute markers, so a tick finds the due minutes without reading the future ones.
- Stream ``STMTFLOW_B_STATUS``, subjects ``stmtflow.B.st.<status>.<workflow>.<created>.<id>.<v>``:
  the listing index, by status and type, in creation order.
- Stream ``STMTFLOW_B_CHILDREN``, subjects ``stmtflow.B.ch.<parent>.<created>.<id>``: "instance
  ``id`` may be a child of ``parent``", put before the child's record is created and never
  changed (a parent is fixed at birth), so a parent's children are one request away.
- Stream ``STMTFLOW_B_SCHEDULES``, subjects ``stmtflow.B.sd.>``, and KV ``s.<name>`` and
  ``sclock``: schedules and how a tick finds the due ones (``stmtflow.stores._nats_schedules``).
- Stream ``STMTFLOW_B_INPUTS``, subjects ``stmtflow.B.in.<assignee>.<workflow>.<id>.<v>``: "instance
  ``id`` may have pending-input rows for that assignee (``n``: nobody in particular, else ``a``
  and the name) of that workflow (``w`` and the name)". The rows themselves are kept in the
  record, so they are committed with the state by the same compare-and-set.

Every index stream keeps one message per subject. Ids and type names are written in unpadded
base64url (letters, digits, ``-`` and ``_``), so any string is a valid key and subject token.
The record remembers the index entries it relies on (``due``: slot, order and version, ``st``:
the version of its status entry, ``inp``: the version of its input entries, one per assignee and
workflow of its rows); an entry the record does not name is a stale hint.

Example:
    >>> token("order/1 ü")
    'b3JkZXIvMSDDvA'
    >>> untoken(token("order/1 ü"))
    'order/1 ü'
    >>> due_place("waiting", datetime(2030, 1, 1, tzinfo=UTC), None)
    ('31557600', '1.1893456000000000')
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stmtflow.stores._inputs import PendingInput
from stmtflow.stores._nats_inbox import (
    NO_MAIL,
    Mail,
    family_doc,
    family_fields,
    mail_doc,
    mail_from,
)
from stmtflow.stores.base import Record, with_changes

__all__ = [
    "RESUMING_SLOT",
    "SLOT",
    "Due",
    "Names",
    "Pair",
    "Stored",
    "decode",
    "due_place",
    "encode",
    "micros",
    "pairs",
    "token",
    "untoken",
]

SCHEMA_VERSION = 1
"""The layout this release writes and reads (kept in ``meta.schema``)."""

SLOT = timedelta(minutes=1)
"""The width of a due slot: every wake-up in one minute shares its slot's marker."""

RESUMING_SLOT = "r"
"""The slot of instances whose status is ``resuming``: claimable whatever their wake-up."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def token(text: str) -> str:
    """``text`` as a KV key / subject token: unpadded base64url of its UTF-8."""
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode("ascii")


def untoken(tok: str) -> str:
    """The text `token` encoded."""
    return base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)).decode()


def micros(value: datetime) -> int:
    """Microseconds since 1970 (exact, for UTC-aware datetimes)."""
    return (value - _EPOCH) // _MICRO


def _time(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + value * _MICRO


def slot_of(value: datetime) -> int:
    """The minute slot of a wake-up time."""
    return (value - _EPOCH) // SLOT


Due = tuple[str, str, int]
"""A due entry: its slot, its order (``k.t``) and the version that put it."""


def due_place(
    status: str, wake_at: datetime | None, created_at: datetime | None, urgent: bool = False
) -> tuple[str, str] | None:
    """(slot, order) of a record in the due index; None when it has no work to be claimed for.
    ``urgent`` (a new message, an intent to finish: `Mail.urgent`) files it as resuming work."""
    if status == "resuming" or urgent:
        if wake_at is None:
            assert created_at is not None
            return RESUMING_SLOT, f"0.{micros(created_at)}"
        return RESUMING_SLOT, f"1.{micros(wake_at)}"
    return None if wake_at is None else (str(slot_of(wake_at)), f"1.{micros(wake_at)}")


Pair = tuple[str | None, str]
"""Whom a pending-input row asks and of which workflow: (assignee, workflow)."""


def pairs(rows: tuple[PendingInput, ...]) -> set[Pair]:
    """The (assignee, workflow) pairs of ``rows``: one input entry each."""
    return {(row.assignee, row.workflow) for row in rows}


def _who(assignee: str | None) -> str:
    return "n" if assignee is None else f"a{token(assignee)}"


@dataclass(frozen=True, slots=True)
class Names:
    """The bucket, stream and subject names of one store."""

    bucket: str

    @property
    def due_stream(self) -> str:
        """Entries of the minute slots, and the minute markers."""
        return f"STMTFLOW_{self.bucket}_DUE"

    @property
    def resuming_stream(self) -> str:
        """Entries of the resuming slot."""
        return f"STMTFLOW_{self.bucket}_RESUMING"

    @property
    def hour_stream(self) -> str:
        """The hour markers."""
        return f"STMTFLOW_{self.bucket}_HOURS"

    @property
    def status_stream(self) -> str:
        """The listing entries."""
        return f"STMTFLOW_{self.bucket}_STATUS"

    @property
    def children_stream(self) -> str:
        """The children entries."""
        return f"STMTFLOW_{self.bucket}_CHILDREN"

    @property
    def inputs_stream(self) -> str:
        """The pending-input entries."""
        return f"STMTFLOW_{self.bucket}_INPUTS"

    @property
    def schedules_stream(self) -> str:
        """The due entries of schedules (`stmtflow.stores._nats_schedules`)."""
        return f"STMTFLOW_{self.bucket}_SCHEDULES"

    @property
    def prefix(self) -> str:
        return f"stmtflow.{self.bucket}"

    def streams(self) -> dict[str, list[str]]:
        """Each index stream and the subjects it holds.

        Each stream is scanned by its own kind of request (NATS 2.9 matches a subject filter
        against every subject of the stream), so a tick's requests scan hour markers and
        resuming work, not the entries of every timer.
        """
        p = self.prefix
        return {
            self.due_stream: [f"{p}.due.>", f"{p}.slot.*.*"],
            self.resuming_stream: [f"{p}.resuming.>"],
            self.hour_stream: [f"{p}.hour.*"],
            self.status_stream: [f"{p}.st.>"],
            self.inputs_stream: [f"{p}.in.>"],
            self.children_stream: [f"{p}.ch.>"],
            self.schedules_stream: [f"{p}.sd.>"],
        }

    def stream_of(self, subject: str) -> str:
        """The stream an entry or marker subject is kept in."""
        kind = subject.split(".")[2]
        return {
            "due": self.due_stream,
            "slot": self.due_stream,
            "resuming": self.resuming_stream,
            "hour": self.hour_stream,
            "st": self.status_stream,
            "in": self.inputs_stream,
            "ch": self.children_stream,
            "sd": self.schedules_stream,
        }[kind]

    def due(self, id: str, due: Due) -> str:
        slot, order, version = due
        if slot == RESUMING_SLOT:
            return f"{self.prefix}.resuming.{order}.{token(id)}.{version}"
        return f"{self.prefix}.due.{slot}.{order}.{token(id)}.{version}"

    def due_filter(self, slot: str) -> str:
        if slot == RESUMING_SLOT:
            return f"{self.prefix}.resuming.*.*.*.*"
        return f"{self.prefix}.due.{slot}.*.*.*.*"

    def marker(self, minute: int) -> str:
        """The marker of a minute slot."""
        return f"{self.prefix}.slot.{minute // 60}.{minute}"

    def minutes(self, hour: int) -> str:
        """The filter of the minute markers of ``hour``."""
        return f"{self.prefix}.slot.{hour}.*"

    def hour(self, hour: int) -> str:
        """The marker of an hour that holds minute markers (``*``: every hour)."""
        return f"{self.prefix}.hour.{hour}"

    @property
    def hours(self) -> str:
        return f"{self.prefix}.hour.*"

    def status(self, rec: Record, version: int) -> str:
        assert rec.created_at is not None
        created = micros(rec.created_at)
        return (
            f"{self.prefix}.st.{rec.status}.{token(rec.workflow)}.{created}.{token(rec.id)}"
            f".{version}"
        )

    def status_filter(self, status: str | None, workflow: str | None) -> str:
        wf = "*" if workflow is None else token(workflow)
        return f"{self.prefix}.st.{status or '*'}.{wf}.*.*.*"

    def child(self, rec: Record) -> str:
        """The entry of a child under its parent."""
        assert rec.parent_id is not None and rec.created_at is not None
        created = micros(rec.created_at)
        return f"{self.prefix}.ch.{token(rec.parent_id)}.{created}.{token(rec.id)}"

    def children_filter(self, parent_id: str) -> str:
        return f"{self.prefix}.ch.{token(parent_id)}.*.*"

    def input(self, id: str, pair: Pair, version: int) -> str:
        """The entry of instance ``id``'s rows for one assignee and workflow."""
        assignee, workflow = pair
        return f"{self.prefix}.in.{_who(assignee)}.w{token(workflow)}.{token(id)}.{version}"

    def input_filter(self, assignee: str | None, workflow: str | None) -> str:
        who = "*" if assignee is None else _who(assignee)
        wf = "*" if workflow is None else f"w{token(workflow)}"
        return f"{self.prefix}.in.{who}.{wf}.*.*"


@dataclass(frozen=True, slots=True)
class Stored:
    """A record as read from the bucket: the record, its KV revision and its index references."""

    record: Record
    revision: int
    due: Due | None
    """The due entry the record relies on, or None."""
    st: int
    """The version that put the record's status entry."""
    inputs: tuple[PendingInput, ...] = ()
    """The instance's pending-input rows, committed with its state."""
    inp: int = 0
    """The version that put the record's input entries (one per pair of its rows)."""
    mail: Mail = NO_MAIL
    """The instance's inbox and its intent (`stmtflow.stores._nats_inbox`)."""

    def due_subject(self, names: Names) -> str | None:
        return None if self.due is None else names.due(self.record.id, self.due)

    def status_subject(self, names: Names) -> str:
        return names.status(self.record, self.st)

    def input_subjects(self, names: Names) -> set[str]:
        return {names.input(self.record.id, p, self.inp) for p in pairs(self.inputs)}

    def subjects(self, names: Names) -> set[str]:
        """Every index entry the record relies on."""
        due = self.due_subject(names)
        return {self.status_subject(names), *self.input_subjects(names), *([due] if due else [])}


def _t(value: datetime | None) -> int | None:
    return None if value is None else micros(value)


def _row(row: PendingInput) -> dict[str, Any]:
    return {
        "event": row.event,
        "thread": row.thread_id,
        "prompt": row.prompt,
        "assignee": row.assignee,
        "schema": row.input_schema,
        "asked": _t(row.asked_at),
        "deadline": _t(row.deadline),
        "workflow": row.workflow,
    }


def _unrow(id: str, doc: dict[str, Any]) -> PendingInput:
    asked = _time(doc["asked"])
    assert asked is not None
    return PendingInput(
        id,
        doc["event"],
        doc["thread"],
        doc["prompt"],
        doc["assignee"],
        doc["schema"],
        asked,
        _time(doc["deadline"]),
        doc["workflow"],
    )


def encode(stored: Stored) -> bytes:
    """The JSON a record is stored as (times in microseconds since 1970, exact); its revision
    is the bucket's, not part of the value."""
    rec, due, t = stored.record, stored.due, _t
    doc: dict[str, Any] = {
        "id": rec.id,
        "workflow": rec.workflow,
        "status": rec.status,
        "version": rec.version,
        "wake_at": t(rec.wake_at),
        "lease_owner": rec.lease_owner,
        "lease_expires": t(rec.lease_expires),
        "fence": rec.fence,
        "error": rec.error,
        "created_at": t(rec.created_at),
        "updated_at": t(rec.updated_at),
        "due": None if due is None else list(due),
        "st": stored.st,
        "inputs": [_row(row) for row in stored.inputs],
        "inp": stored.inp,
        **family_doc(rec),
        "mail": mail_doc(stored.mail),
        "data": rec.data,
        "state": rec.state,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def decode(value: bytes, revision: int) -> Stored:
    """The `Stored` record of a bucket value (written by `encode`)."""
    doc = json.loads(value)
    rec = with_changes(
        _BLANK,
        id=doc["id"],
        workflow=doc["workflow"],
        data=doc["data"],
        state=doc["state"],
        status=doc["status"],
        version=doc["version"],
        wake_at=_time(doc["wake_at"]),
        lease_owner=doc["lease_owner"],
        lease_expires=_time(doc["lease_expires"]),
        fence=doc["fence"],
        error=doc["error"],
        created_at=_time(doc["created_at"]),
        updated_at=_time(doc["updated_at"]),
        **family_fields(doc),
    )
    mail = mail_from(doc.get("mail"))
    if mail.box:
        rec = with_changes(rec, inbox=True)
    due = doc["due"]
    rows = tuple(_unrow(rec.id, row) for row in doc.get("inputs", ()))
    return Stored(
        rec,
        revision,
        None if due is None else (due[0], due[1], due[2]),
        doc["st"],
        rows,
        doc.get("inp", 0),
        mail,
    )


_BLANK = Record(id="-", workflow="-", data="", state="")


def parse_due(subject: str) -> tuple[tuple[int, int], str, int]:
    """(order, id, version) of a due subject: order as (k, t), see the module docstring."""
    *_, k, t, id_tok, version = subject.split(".")
    return (int(k), int(t)), untoken(id_tok), int(version)


def parse_status(subject: str) -> tuple[str, int, str, int]:
    """(status, created micros, id, version) of a status subject."""
    *_, status, _wf, created, id_tok, version = subject.split(".")
    return status, int(created), untoken(id_tok), int(version)


def parse_child(subject: str) -> tuple[int, str]:
    """(created micros, id) of a children subject."""
    *_, created, id_tok = subject.split(".")
    return int(created), untoken(id_tok)


def parse_input(subject: str) -> tuple[str, int]:
    """(id, version) of an input subject."""
    *_, id_tok, version = subject.split(".")
    return untoken(id_tok), int(version)

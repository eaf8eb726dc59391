"""A store on NATS JetStream: records in a KV bucket, due work and listings in index streams.

Install with ``pip install 'stmtflow[nats]'``. URL: ``nats://host:4222?bucket=NAME`` (also
``nats://user:password@host:port?bucket=NAME``), with optional ``storage=file|memory`` (the
JetStream storage of the bucket and streams it creates; default ``file``), ``replicas=N``
(default 1) and ``timeout=SECONDS`` (each operation's limit; default 10).

Every record is one KV entry, written compare-and-set on its KV revision (an update names the
revision it read; a create succeeds only if the key is absent), with its lease and fencing token
inside, so a claim is a compare-and-set too; the instance's pending-input rows are kept in the
record as well, so they are committed with its state, and so is its inbox; the children and
messages a write sends to other instances are committed in it as an intent and applied after
(``stmtflow.stores._nats_inbox``). Due work and listings are found through index
streams (``stmtflow.stores._nats_keys``) that are hints checked against the records: a tick
reads the markers of the minutes that hold wake-ups, then only the entries of the due ones, never
every record. ``docs/stores.md`` explains the design and its costs.

The `Store` protocol is synchronous; nats-py is asyncio. Every call runs on one event loop on a
background thread owned by the store (started on first use, stopped by `NatsStore.close`), so
the store is safe to share between threads; each call waits at most ``timeout`` seconds.

Example:
    >>> store = NatsStore("nats://127.0.0.1:4222?bucket=demo")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

try:
    import nats.js.errors
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the NATS store needs nats-py: pip install 'stmtflow[nats]'") from exc

from stmtflow.errors import NotFound, StmtflowError
from stmtflow.stores import _nats_scan as scan
from stmtflow.stores._batch import NO_BATCH, Batch
from stmtflow.stores._inputs import PendingInput, check_inputs
from stmtflow.stores._nats_client import Client, Settings
from stmtflow.stores._nats_inbox import NatsInboxes, born, finish
from stmtflow.stores._nats_keys import Stored, token, untoken
from stmtflow.stores._nats_loop import LoopThread
from stmtflow.stores._nats_schedules import NatsSchedules
from stmtflow.stores._outbox import WithoutOutbox, outbox_refusal
from stmtflow.stores.base import (
    Record,
    Store,
    aware,
    check_claim_args,
    free_lease,
    lease_conflict,
    redact,
    refusal,
    status_value,
    utcnow,
    with_changes,
)

__all__ = ["NatsStore", "drop", "parse_url"]

T = TypeVar("T")

log = logging.getLogger("stmtflow.stores.nats")

_RETRIES = 100
"""Compare-and-set attempts of one call before it gives up (each lost only to another write)."""


def parse_url(url: str) -> Settings:
    """The `Settings` of a ``nats://`` URL; a `ValueError` naming the URL if it is malformed."""
    shown = redact(url)
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - {"bucket", "storage", "replicas", "timeout"})
    if unknown:
        raise ValueError(f"store URL {shown!r}: unknown parameter(s) {', '.join(unknown)}")
    bucket = params.get("bucket", "")
    if not bucket or not all(c.isascii() and (c.isalnum() or c in "-_") for c in bucket):
        raise ValueError(f"store URL {shown!r}: give ?bucket=NAME (letters, digits, '-' and '_')")
    storage = params.get("storage", "file")
    if storage not in ("file", "memory"):
        raise ValueError(f"store URL {shown!r}: storage must be 'file' or 'memory'")
    try:
        replicas = int(params.get("replicas", "1"))
        timeout = float(params.get("timeout", "10"))
    except ValueError:
        raise ValueError(f"store URL {shown!r}: replicas and timeout must be numbers") from None
    if replicas < 1 or not timeout > 0:
        raise ValueError(f"store URL {shown!r}: replicas and timeout must be positive")
    if not parts.hostname:
        raise ValueError(f"store URL {shown!r}: a NATS URL needs a host")
    server = f"nats://{parts.netloc}"
    return Settings(server, bucket, storage, replicas, timeout)


class NatsStore(NatsInboxes, WithoutOutbox, NatsSchedules, Store):
    """A `Store` on a NATS JetStream KV bucket, shared by any number of workers.

    Args:
        url: ``nats://host:port?bucket=NAME`` (see the module docstring for the options).

    Raises:
        ValueError: a malformed URL.

    The server is contacted on first use: an unreachable one is a `StmtflowError` then.

    Example:
        >>> with NatsStore("nats://127.0.0.1:4222?bucket=flows") as s:  # doctest: +SKIP
        ...     s.list(status="waiting")
        []
    """

    store_name = "NATS"
    """How a refusal names this store (it keeps no outbox yet)."""

    def __init__(self, url: str) -> None:
        self.url = redact(url)
        self.settings = parse_url(url)
        self._client = Client(self.settings, self.url)
        self._loop = LoopThread(f"stmtflow-nats-{self.settings.bucket}", self._client.forget)

    def _run(self, what: str, make: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        async def guarded() -> T:
            try:
                return await make(self._client)
            except (nats.errors.Error, OSError) as exc:
                why = str(exc) or type(exc).__name__
                raise StmtflowError(f"NATS at {self.url}: {what}: {why}") from exc

        return self._loop.run(
            guarded, timeout=self.settings.timeout, what=f"NATS at {self.url}: {what}"
        )

    def close(self) -> None:
        self._loop.stop(self._client.close)

    # -- records ----------------------------------------------------------------------------

    def create(self, record: Record, *, inputs: Sequence[PendingInput] | None = None) -> Record:
        rows = check_inputs(record.id, inputs or ())
        stored = born(record, utcnow())
        return self._run(f"create {record.id!r}", lambda c: c.create(stored, rows))

    def get(self, id: str) -> Record:
        async def get(c: Client) -> Record:
            return _found(await c.read(id), id).record

        return self._run(f"get {id!r}", get)

    def list(
        self,
        status: str | None = None,
        workflow: str | None = None,
        limit: int | None = None,
        *,
        parent_id: str | None = None,
    ) -> builtins.list[Record]:
        wanted = None if status is None else status_value(status)
        if parent_id is not None:
            return self._run(
                f"list the children of {parent_id!r}",
                lambda c: scan.children(c, parent_id, wanted, workflow, limit),
            )
        return self._run("list", lambda c: scan.listing(c, wanted, workflow, limit))

    def update(
        self,
        record: Record,
        *,
        expected_version: int,
        fence: int | None = None,
        release: bool = False,
        batch: Batch = NO_BATCH,
        inputs: Sequence[PendingInput] | None = None,
    ) -> Record:
        rows = None if inputs is None else check_inputs(record.id, inputs)
        now = utcnow()

        def change(current: Record) -> Record:
            if current.version != expected_version or (
                fence is not None and (current.fence != fence or current.lease_owner is None)
            ):
                raise refusal(current, expected_version, fence)
            lease = {"lease_owner": None, "lease_expires": None} if release else {}
            return _data(current, record, now, **lease)

        return self._change(record.id, f"update {record.id!r}", change, rows, batch)

    def update_free(
        self,
        record: Record,
        *,
        expected_version: int,
        now: datetime,
        owner: str | None = None,
        lease: timedelta | None = None,
        batch: Batch = NO_BATCH,
        inputs: Sequence[PendingInput] | None = None,
    ) -> Record:
        rows = None if inputs is None else check_inputs(record.id, inputs)
        now, expires = free_lease(now, owner, lease)
        written = utcnow()

        def change(current: Record) -> Record:
            if current.version != expected_version or current.lease_live(now):
                raise refusal(current, expected_version, None, now)
            fence = current.fence if owner is None else current.fence + 1
            return _data(
                current, record, written, lease_owner=owner, lease_expires=expires, fence=fence
            )

        return self._change(record.id, f"update {record.id!r}", change, rows, batch)

    def _change(
        self,
        id: str,
        what: str,
        change: Callable[[Record], Record | None],
        inputs: tuple[PendingInput, ...] | None = None,
        batch: Batch = NO_BATCH,
    ) -> Record:
        """Read (or take the remembered copy), ``change``, write compare-and-set (with
        ``inputs`` as the new pending-input rows, None keeping them, and ``batch``: its own
        messages in the record, the rest as its intent, applied after); repeat on a lost race.
        ``change`` raises to refuse; a refusal judged on a remembered copy is judged again on a
        fresh read. A left-over intent of the record is finished before anything is decided."""
        written = self._maybe(id, what, change, inputs, batch)
        assert written is not None
        return written

    def _maybe(
        self,
        id: str,
        what: str,
        change: Callable[[Record], Record | None],
        inputs: tuple[PendingInput, ...] | None = None,
        batch: Batch = NO_BATCH,
    ) -> Record | None:
        """`_change`, where ``change`` may also answer None: nothing to write (returned)."""
        if batch.emit:  # the engine refuses emit() in the action already: this guards others
            raise outbox_refusal("NATS")

        async def run(c: Client) -> Record | None:
            current, fresh = c.cache.get(id), False
            for _ in range(_RETRIES):
                if current is None:
                    current, fresh = _found(await c.read(id), id), True
                if current.mail.intent is not None:
                    # A write that died before it applied its batch: finished from a fresh
                    # read only (a remembered copy may show an intent cleared since).
                    if fresh:
                        await finish(c, current)
                    current = None
                    continue
                try:
                    new = change(current.record)
                except StmtflowError:
                    if fresh:
                        raise
                    current = None
                    continue
                if new is None:
                    if fresh:
                        return None
                    current = None
                    continue
                mail = None if batch.empty else current.mail.own(batch, new.version, utcnow())
                written = await c.write(current, new, inputs, mail)
                if written is not None:
                    if written.mail.intent is not None:
                        await self._finish(c, written)
                    return new
                current = None
            raise StmtflowError(f"{what}: gave up after {_RETRIES} lost races")

        return self._run(what, run)

    async def _finish(self, c: Client, written: Stored) -> None:
        """Apply a committed intent now; a failure is logged, not raised: the write stands,
        and the intent is finished by the record's next write or claim (a tick finds it)."""
        try:
            await finish(c, written)
        except (nats.errors.Error, OSError, StmtflowError) as exc:
            log.warning(
                "NATS store %s: %r: batch left to recover: %s", self.url, written.record.id, exc
            )

    # -- leases -----------------------------------------------------------------------------

    def claim_due(
        self, now: datetime, owner: str, lease: timedelta, limit: int = 10
    ) -> builtins.list[Record]:
        now = aware(now, "now")
        check_claim_args(owner, lease, limit)
        return self._run("claim due work", lambda c: scan.claim_due(c, now, owner, lease, limit))

    def claim(self, id: str, owner: str, lease: timedelta, now: datetime | None = None) -> Record:
        now = utcnow() if now is None else aware(now, "now")
        check_claim_args(owner, lease)

        def change(current: Record) -> Record:
            if current.lease_owner not in (None, owner) and current.lease_live(now):
                raise lease_conflict(current, owner)
            return scan.taken(current, owner, now + lease)

        return self._change(id, f"claim {id!r}", change)

    def renew(
        self,
        id: str,
        owner: str,
        fence: int,
        lease: timedelta,
        now: datetime | None = None,
    ) -> Record:
        now = utcnow() if now is None else aware(now, "now")
        check_claim_args(owner, lease)

        def change(current: Record) -> Record:
            if current.lease_owner != owner or current.fence != fence:
                raise refusal(current, current.version, fence)
            return with_changes(current, lease_expires=now + lease)

        return self._change(id, f"renew {id!r}", change)

    def release(self, id: str, owner: str, fence: int) -> bool:
        def change(current: Record) -> Record | None:
            if current.lease_owner != owner or current.fence != fence:
                return None  # taken over or released already: left alone
            return with_changes(current, lease_owner=None, lease_expires=None)

        return self._maybe(id, f"release {id!r}", change) is not None

    def inputs(
        self, *, assignee: str | None = None, workflow: str | None = None
    ) -> builtins.list[PendingInput]:
        return self._run("list pending inputs", lambda c: scan.inputs(c, assignee, workflow))

    def count_due(self, now: datetime) -> int:
        now = aware(now, "now")
        return self._run("count due work", lambda c: scan.count_due(c, now))

    # -- targets ----------------------------------------------------------------------------

    def set_target(self, workflow: str, target: str) -> None:
        async def put(c: Client) -> None:
            await (await c.ready()).put(f"t.{token(workflow)}", target.encode())

        self._run(f"set the target of {workflow!r}", put)

    def get_target(self, workflow: str) -> str | None:
        async def get(c: Client) -> str | None:
            try:
                entry = await (await c.ready()).get(f"t.{token(workflow)}")
            except nats.js.errors.KeyNotFoundError:
                return None
            return (entry.value or b"").decode()

        return self._run(f"get the target of {workflow!r}", get)

    def targets(self) -> dict[str, str]:
        async def every(c: Client) -> dict[str, str]:
            kv = await c.ready()
            bucket = self.settings.bucket
            subjects = await c.subjects(f"KV_{bucket}", f"$KV.{bucket}.t.*")
            keys = [s.split(".", 2)[2] for s in subjects]
            values = await asyncio.gather(*(kv.get(key) for key in keys))
            found = {
                untoken(k[2:]): (v.value or b"").decode() for k, v in zip(keys, values, strict=True)
            }
            return dict(sorted(found.items()))

        return self._run("list the targets", every)


def drop(url: str) -> None:
    """Delete the bucket and the index streams ``url`` names: every record stored there.

    For tests and benchmarks that each use a bucket of their own. A missing bucket is fine.
    """
    store = NatsStore(url)
    try:
        store._run("delete the bucket", lambda c: c.drop())
    finally:
        store.close()


def _found(stored: Stored | None, id: str) -> Stored:
    if stored is None:
        raise NotFound(f"no workflow instance with id {id!r}")
    return stored


def _data(current: Record, record: Record, now: datetime, **lease: Any) -> Record:
    """``record``'s data fields over ``current`` (and ``lease``), version + 1."""
    return with_changes(
        current,
        data=record.data,
        state=record.state,
        status=record.status,
        wake_at=record.wake_at,
        error=record.error,
        version=current.version + 1,
        updated_at=now,
        **lease,
    )

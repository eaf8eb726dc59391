"""The PostgreSQL store's lock index: `stmtflow.stores._locks.apply_locks`' rules in two
statements that wait for no answer.

A write that carries claims sends both in its pipelined transaction, after the write's own
statement and before ``COMMIT`` (`stmtflow.stores.postgres`), so the lock work adds no round
trip: the client never reads the rows to decide what to change, the server does.

1. `SERIALISE` takes the transaction's advisory lock of every key whose rows change (the
   instance's rows no claim keeps, the claims that arrive), one ``hashtext`` each, in sorted
   order, so two writers never wait for each other in a circle.
2. `REPLACE` is one statement: it drops the rows no claim keeps, queues the arriving claims
   (a thread that arrived again takes a fresh place: its row is moved to a new ``seq``), grants
   the waiters of the changed keys in arrival order while fewer than their ``slots`` hold (the
   rule of `stmtflow.stores._locks.grants`: the first waiter that does not fit stops the
   grants), and posts each one granted its lock event's message (`grant_message`'s row).

`REPLACE` is its own statement after `SERIALISE` because a statement reads the rows as they
were when it began: begun after the locks were taken, it sees every row the last holder of
each lock committed. The instance's own rows are changed only by its writes, which its
record's row lock orders; other instances' rows of a key only under that key's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from stmtflow.stores._locks import LOCK_EVENT, LockClaim

__all__ = ["REPLACE", "SERIALISE", "lock_params"]

_CHANGES = """
WITH c AS (
    SELECT * FROM unnest(
        %(threads)s::text[], %(names)s::text[], %(keys)s::text[], %(slots)s::int[],
        %(again)s::bool[]
    ) WITH ORDINALITY AS c(thread_id, name, lock_key, slots, again, ord)
), mine AS (
    SELECT seq, lock_key, thread_id, name FROM stmtflow_locks WHERE instance_id = %(id)s
), gone AS (
    SELECT m.* FROM mine m WHERE NOT EXISTS (
        SELECT 1 FROM c WHERE c.thread_id = m.thread_id AND c.name = m.name AND NOT c.again
    )
), new AS (
    SELECT c.* FROM c WHERE c.lock_key IS NOT NULL AND (c.again OR NOT EXISTS (
        SELECT 1 FROM mine m WHERE m.thread_id = c.thread_id AND m.name = c.name
    ))
)"""
"""What a write changes: ``gone``, the instance's rows no claim keeps (or that queue anew), and
``new``, the claims that arrive (in claim order, ``ord``)."""

SERIALISE = f"""{_CHANGES}
SELECT pg_advisory_xact_lock(h) FROM (
    SELECT DISTINCT hashtext(k) AS h
    FROM (SELECT lock_key FROM gone UNION ALL SELECT lock_key FROM new) AS keys(k)
    ORDER BY h
) AS sorted
"""
"""Lock every key whose rows change, in the order of their lock ids (`lock_params`)."""

REPLACE = f"""{_CHANGES}, keys AS (
    SELECT lock_key FROM gone UNION SELECT lock_key FROM new
), fresh AS (
    SELECT nextval(pg_get_serial_sequence('stmtflow_locks', 'seq')) AS seq, n.*
    FROM (SELECT * FROM new ORDER BY ord) AS n
), after AS (
    SELECT l.seq, l.lock_key, l.slots, l.granted = 1 AS held, false AS fresh
    FROM stmtflow_locks l
    WHERE l.lock_key IN (SELECT lock_key FROM keys) AND l.seq NOT IN (SELECT seq FROM gone)
    UNION ALL
    SELECT f.seq, f.lock_key, f.slots, false, true FROM fresh f
), ranked AS (
    SELECT a.*,
        count(*) FILTER (WHERE a.held) OVER (PARTITION BY a.lock_key) AS holders,
        count(*) FILTER (WHERE NOT a.held) OVER (PARTITION BY a.lock_key ORDER BY a.seq) AS place
    FROM after a
), served AS (
    SELECT r.seq, r.fresh, NOT r.held AND bool_and(r.held OR r.holders + r.place <= r.slots)
        OVER (PARTITION BY r.lock_key ORDER BY r.seq) AS granted
    FROM ranked r
), dropped AS (
    DELETE FROM stmtflow_locks l USING gone g
    WHERE l.seq = g.seq
        AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.thread_id = g.thread_id AND f.name = g.name)
), requeued AS (
    UPDATE stmtflow_locks l
    SET seq = f.seq, lock_key = f.lock_key, slots = f.slots,
        granted = CASE WHEN s.granted THEN 1 ELSE 0 END
    FROM gone g
    JOIN fresh f ON f.thread_id = g.thread_id AND f.name = g.name
    JOIN served s ON s.seq = f.seq
    WHERE l.seq = g.seq
), inserted AS (
    INSERT INTO stmtflow_locks (seq, lock_key, instance_id, thread_id, name, slots, granted)
    SELECT f.seq, f.lock_key, %(id)s, f.thread_id, f.name, f.slots,
        CASE WHEN s.granted THEN 1 ELSE 0 END
    FROM fresh f JOIN served s ON s.seq = f.seq
    WHERE NOT EXISTS (SELECT 1 FROM gone g WHERE g.thread_id = f.thread_id AND g.name = f.name)
), promoted AS (
    UPDATE stmtflow_locks l SET granted = 1
    FROM served s
    WHERE l.seq = s.seq AND s.granted AND NOT s.fresh
    RETURNING l.instance_id, l.thread_id, l.name, l.lock_key
), told AS (
    SELECT * FROM promoted
    UNION ALL
    SELECT %(id)s, f.thread_id, f.name, f.lock_key
    FROM fresh f JOIN served s ON s.seq = f.seq WHERE s.granted
)
INSERT INTO stmtflow_inbox
    (instance_id, kind, event, thread_id, pc, input, key, buffered, status, created_at)
SELECT t.instance_id, 'event', t.name || %(suffix)s, t.thread_id, 0, to_json(t.lock_key)::text,
    NULL, false, 'new', %(now)s
FROM told t
WHERE EXISTS (SELECT 1 FROM stmtflow_instances i WHERE i.id = t.instance_id)
ON CONFLICT DO NOTHING
"""
"""Replace the instance's rows, grant the changed keys, post the grants (`lock_params`)."""


def lock_params(id: str, claims: Sequence[LockClaim], now: datetime) -> dict[str, Any]:
    """The parameters of `SERIALISE` and `REPLACE` for instance ``id``'s ``claims``."""
    return {
        "id": id,
        "threads": [c.thread_id for c in claims],
        "names": [c.name for c in claims],
        "keys": [c.key for c in claims],
        "slots": [c.limit for c in claims],
        "again": [c.again for c in claims],
        "suffix": LOCK_EVENT,
        "now": now,
    }

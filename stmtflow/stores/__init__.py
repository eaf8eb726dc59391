"""Stores: where workflow instances are kept, chosen by URL.

=================================  =====================================================
``memory://``                      in-process dict; nothing survives the process
``sqlite:///path/to/file.db``      one file, no server (the default: `DEFAULT_URL`);
                                   ``sqlite:////abs/path.db`` for an absolute path,
                                   ``sqlite:///:memory:`` for a private in-memory database
``postgresql://user@host/db``      many workers on many machines (``postgres://`` too;
                                   ``?schema=name`` picks a schema); needs
                                   ``pip install 'stmtflow[postgres]'``
``redis://host:6379/0``            many workers sharing one Redis server (``rediss://``
                                   for TLS; ``?prefix=name`` starts every key); needs
                                   ``pip install 'stmtflow[redis]'``
``nats://host:4222?bucket=NAME``   NATS JetStream KV, many workers on many machines
                                   (``storage=memory``, ``replicas=N``, ``timeout=S``);
                                   needs ``pip install 'stmtflow[nats]'``
=================================  =====================================================

Every backend implements the `Store` protocol over `Record` values; ``docs/stores.md`` explains
what compare-and-set, leases and fencing tokens guarantee.

Example:
    >>> with open_store("memory://") as store:
    ...     store.create(Record(id="a", workflow="Order", data="{}", state="{}")).version
    1
"""

from __future__ import annotations

from urllib.parse import urlsplit

from stmtflow.stores.base import (
    TERMINAL_STATUSES,
    Batch,
    Message,
    PendingInput,
    Record,
    Store,
    redact,
)
from stmtflow.stores.memory import MemoryStore
from stmtflow.stores.sqlite import SQLiteStore

__all__ = [
    "DEFAULT_URL",
    "TERMINAL_STATUSES",
    "Batch",
    "MemoryStore",
    "Message",
    "PendingInput",
    "Record",
    "SQLiteStore",
    "Store",
    "open_store",
]

DEFAULT_URL = "sqlite:///stmtflow.db"
"""The store used when none is named: ``stmtflow.db`` in the current directory."""

_SUPPORTED = (
    "memory://, sqlite:///path/to/file.db, postgresql://user@host/db, redis://host:6379/0, "
    "nats://host:4222?bucket=NAME"
)


def _bad(url: str, why: str) -> ValueError:
    return ValueError(f"unsupported store URL {redact(url)!r}: {why} (supported: {_SUPPORTED})")


def open_store(url: str = DEFAULT_URL) -> Store:
    """Open the store a URL names (see the module docstring for the forms).

    Raises:
        ValueError: an unknown scheme or a malformed URL, naming the URL and the supported forms.
        ImportError: a ``postgresql://`` URL without the ``stmtflow[postgres]`` extra installed,
            or a ``redis://`` URL without ``stmtflow[redis]``,
            or a ``nats://`` URL without ``stmtflow[nats]``.
        StmtflowError: the database cannot be reached or has a newer schema.

    Example:
        >>> open_store("mysql://db")
        Traceback (most recent call last):
        ...
        ValueError: unsupported store URL 'mysql://db': unknown scheme 'mysql' (supported: ...)
    """
    if not isinstance(url, str) or "://" not in url:
        raise _bad(str(url), "expected scheme://...")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _bad(url, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.netloc or parts.path or parts.query:
            raise _bad(url, "memory:// takes no host, path or parameters")
        return MemoryStore()
    if scheme == "sqlite":
        if parts.netloc or parts.query or parts.fragment:
            raise _bad(url, "write sqlite:///relative/path.db or sqlite:////absolute/path.db")
        path = parts.path[1:] if parts.path.startswith("/") else ""
        if not path or path.endswith("/"):
            raise _bad(url, "an SQLite URL needs a file name after sqlite:///")
        return SQLiteStore(path)
    if scheme in ("postgresql", "postgres"):
        if not parts.netloc and not parts.path.strip("/") and not parts.query:
            raise _bad(url, "a PostgreSQL URL needs a host or a database")
        from stmtflow.stores.postgres import PostgresStore

        return PostgresStore(url)
    if scheme in ("redis", "rediss"):
        from stmtflow.stores.redis import RedisStore

        return RedisStore(url)
    if scheme == "nats":
        from stmtflow.stores.nats import NatsStore

        return NatsStore(url)
    raise _bad(url, f"unknown scheme {parts.scheme!r}")

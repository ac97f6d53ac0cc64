"""Where bot state lives, chosen by URL: `create_backend(settings.storage)`.

One package per backend (memory/, sqlite/, postgres/, redis/) holds its state storage,
conversation locks, inbox, rate counts and (sqlite, postgres) knowledge index; backends never
import one another. What they share is at this level: the interfaces (backend.py, inbox.py,
locks.py, rate_counts.py, knowledge.py), errors, leases and fencing, values and URL handling.
"""

from __future__ import annotations

from botbuilder.core import Storage

from bot.storage.backend import Backend
from bot.storage.errors import LockLost, StorageConflictError, StorageUnavailable, StorageURLError
from bot.storage.inbox import Inbox, InboxEntry
from bot.storage.locks import ConversationLocks, LockTimeout
from bot.storage.memory import MemoryBackend
from bot.storage.rate_counts import RateCounts
from bot.storage.server_storage import ServerStorage
from bot.storage.sqlite import SqliteBackend, SqliteStorage

__all__ = [
    "Backend",
    "ConversationLocks",
    "Inbox",
    "InboxEntry",
    "LockLost",
    "LockTimeout",
    "RateCounts",
    "StorageConflictError",
    "StorageURLError",
    "StorageUnavailable",
    "backend_of",
    "create_backend",
]

SUPPORTED_URLS = (
    "memory://, sqlite:///relative/path.db or sqlite:////absolute/path.db, "
    "postgresql://user:password@host:5432/database, redis://:password@host:6379/0"
)


def create_backend(url: str, *, namespace: str = "botloom", pool_size: int = 10) -> Backend:
    """The backend a URL names. Raises StorageURLError (a ValueError) for any other URL.

    `memory://` is botbuilder's MemoryStorage (lost on restart, one process). `sqlite:///x.db` is
    x.db relative to the working directory; `sqlite:////srv/x.db` is the absolute /srv/x.db.
    `postgresql://…` (or `postgres://…`) and `redis://…` (`rediss://…` with TLS) are shared by
    replicas: their tables or keys start with `namespace`, and each process keeps up to
    `pool_size` connections. Nothing connects until `Backend.open` or the first use.
    """
    scheme, sep, rest = url.partition("://")
    # Name only the scheme in errors: a database URL may carry a password.
    if not sep:
        raise StorageURLError(f"storage URL has no scheme; expected {SUPPORTED_URLS}")
    if scheme == "memory" and rest == "":
        return MemoryBackend()
    if scheme == "sqlite" and rest.startswith("/") and len(rest) > 1:
        return SqliteBackend(SqliteStorage(rest[1:]))
    if scheme in ("postgresql", "postgres"):
        from bot.storage.postgres import PostgresBackend, PostgresStorage  # asyncpg only when used

        return PostgresBackend(PostgresStorage(url, namespace=namespace, max_connections=pool_size))
    if scheme in ("redis", "rediss"):
        from bot.storage.redis import RedisBackend, RedisStorage  # redis-py only when it is used

        return RedisBackend(RedisStorage(url, namespace=namespace, max_connections=pool_size))
    if scheme in ("memory", "sqlite"):
        raise StorageURLError(f"malformed {scheme}:// storage URL; expected {SUPPORTED_URLS}")
    raise StorageURLError(f"unsupported storage URL scheme {scheme!r}; expected {SUPPORTED_URLS}")


def backend_of(storage: Storage) -> Backend:
    """The backend of a storage made elsewhere (a test's), so that its locks, inbox and rate
    counts live beside it: in its SQLite file, on its server, or in this process for any storage
    that is not botloom's own (botbuilder's MemoryStorage)."""
    if isinstance(storage, SqliteStorage):
        return SqliteBackend(storage)
    if isinstance(storage, ServerStorage):
        return storage.backend_type(storage)
    return MemoryBackend(storage)

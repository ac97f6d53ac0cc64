"""Where bot state lives, chosen by URL: `create_storage(settings.storage)`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from botbuilder.core import MemoryStorage, Storage

from bot.storage.errors import LockLost, StorageConflictError, StorageUnavailable
from bot.storage.inbox import Inbox, InboxEntry
from bot.storage.leases import DEFAULT_LEASE_S
from bot.storage.locks import ConversationLocks, LockTimeout
from bot.storage.memory import LocalLocks, MemoryInbox, MemoryRateCounts
from bot.storage.rate_counts import RateCounts
from bot.storage.server_storage import ServerStorage
from bot.storage.sqlite import SqliteInbox, SqliteLocks, SqliteRateCounts, SqliteStorage

__all__ = [
    "ConversationLocks",
    "Inbox",
    "InboxEntry",
    "LockLost",
    "LockTimeout",
    "RateCounts",
    "SqliteStorage",
    "StorageConflictError",
    "StorageUnavailable",
    "create_inbox",
    "create_locks",
    "create_rate_counts",
    "create_storage",
    "open_storage",
]

T = TypeVar("T")

SUPPORTED_URLS = (
    "memory://, sqlite:///relative/path.db or sqlite:////absolute/path.db, "
    "postgresql://user:password@host:5432/database, redis://:password@host:6379/0"
)


def create_storage(url: str, *, namespace: str = "botloom", pool_size: int = 10) -> Storage:
    """The storage a URL names. Raises ValueError for any other URL.

    `memory://` is botbuilder's MemoryStorage (lost on restart, one process). `sqlite:///x.db` is
    x.db relative to the working directory; `sqlite:////srv/x.db` is the absolute /srv/x.db.
    `postgresql://…` (or `postgres://…`) and `redis://…` (`rediss://…` with TLS) are shared by
    replicas: their tables or keys start with `namespace`, and each process keeps up to
    `pool_size` connections. Nothing connects until `open_storage` or the first use.
    """
    scheme, sep, rest = url.partition("://")
    # Name only the scheme in errors: a database URL may carry a password.
    if not sep:
        raise ValueError(f"storage URL has no scheme; expected {SUPPORTED_URLS}")
    if scheme == "memory" and rest == "":
        return MemoryStorage()
    if scheme == "sqlite" and rest.startswith("/") and len(rest) > 1:
        return SqliteStorage(rest[1:])
    if scheme in ("postgresql", "postgres"):
        from bot.storage.postgres import PostgresStorage  # asyncpg only when it is used

        return PostgresStorage(url, namespace=namespace, max_connections=pool_size)
    if scheme in ("redis", "rediss"):
        from bot.storage.redis import RedisStorage  # redis-py only when it is used

        return RedisStorage(url, namespace=namespace, max_connections=pool_size)
    if scheme in ("memory", "sqlite"):
        raise ValueError(f"malformed {scheme}:// storage URL; expected {SUPPORTED_URLS}")
    raise ValueError(f"unsupported storage URL scheme {scheme!r}; expected {SUPPORTED_URLS}")


async def open_storage(storage: Storage) -> None:
    """Connect now (and create or migrate the schema) where the storage has a server, so a
    database that cannot be reached stops the start with StorageUnavailable."""
    open_ = getattr(storage, "open", None)
    if open_ is not None:
        await open_()


def create_locks(storage: Storage, *, lease_s: float = DEFAULT_LEASE_S) -> ConversationLocks:
    """Per-conversation locks that live where `storage` lives, so they hold across processes.

    On SQLite, PostgreSQL and Redis they are leases of `lease_s`, renewed while a turn runs: a
    process that dies frees its conversations within `lease_s`.
    """
    return _beside(
        storage,
        lambda path: SqliteLocks(path, lease_s=lease_s),
        lambda server: server.conversation_locks(lease_s=lease_s),
        LocalLocks,
    )


def create_inbox(storage: Storage) -> Inbox:
    """Where acknowledged activities wait for their turn: beside the state, so they are shared
    by the replicas that share it and survive a restart where the state does."""
    return _beside(storage, SqliteInbox, lambda server: server.inbox(), MemoryInbox)


def create_rate_counts(storage: Storage) -> RateCounts:
    """Per-user message counts for the rate limit, beside the state: shared by the replicas that
    share it (SQLite file, PostgreSQL, Redis); in memory for memory://."""
    return _beside(storage, SqliteRateCounts, lambda server: server.rate_counts(), MemoryRateCounts)


def _beside(
    storage: Storage,
    sqlite: Callable[[Path], T],
    server: Callable[[ServerStorage], T],
    memory: Callable[[], T],
) -> T:
    """What lives beside `storage`: in its SQLite file, on its server, or in this process."""
    if isinstance(storage, SqliteStorage):
        return sqlite(storage.path)
    if isinstance(storage, ServerStorage):
        return server(storage)
    return memory()

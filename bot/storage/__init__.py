"""Where bot state lives, chosen by URL: `create_storage(settings.storage)`."""

from __future__ import annotations

from botbuilder.core import MemoryStorage, Storage

from bot.storage.errors import StorageConflictError
from bot.storage.locks import ConversationLocks, LocalLocks, LockTimeout, SqliteLocks
from bot.storage.sqlite import SqliteStorage

__all__ = [
    "ConversationLocks",
    "LockTimeout",
    "SqliteStorage",
    "StorageConflictError",
    "create_locks",
    "create_storage",
]

SUPPORTED_URLS = "memory://, sqlite:///relative/path.db or sqlite:////absolute/path.db"


def create_storage(url: str) -> Storage:
    """The storage a URL names. Raises ValueError for any other URL.

    `memory://` is botbuilder's MemoryStorage (lost on restart, one process). `sqlite:///x.db` is
    x.db relative to the working directory; `sqlite:////srv/x.db` is the absolute /srv/x.db.
    """
    scheme, sep, rest = url.partition("://")
    # Name only the scheme in errors: a database URL may carry a password.
    if not sep:
        raise ValueError(f"storage URL has no scheme; expected {SUPPORTED_URLS}")
    if scheme == "memory" and rest == "":
        return MemoryStorage()
    if scheme == "sqlite" and rest.startswith("/") and len(rest) > 1:
        return SqliteStorage(rest[1:])
    if scheme in ("memory", "sqlite"):
        raise ValueError(f"malformed {scheme}:// storage URL; expected {SUPPORTED_URLS}")
    raise ValueError(f"unsupported storage URL scheme {scheme!r}; expected {SUPPORTED_URLS}")


def create_locks(storage: Storage) -> ConversationLocks:
    """Per-conversation locks that live where `storage` lives, so they hold across processes."""
    if isinstance(storage, SqliteStorage):
        return SqliteLocks(storage.path)
    return LocalLocks()

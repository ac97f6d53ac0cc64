"""A backend: one place bot state can live (memory, a SQLite file, PostgreSQL, Redis), and what
the turns keep beside the state there, so that the replicas sharing the state share it too:
conversation locks, the inbox of acknowledged activities, the rate limit's counts and (SQLite,
PostgreSQL) the knowledge index. `bot.storage.create_backend` makes one from a URL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from botbuilder.core import Storage

from bot.storage.errors import StorageURLError
from bot.storage.inbox import Inbox
from bot.storage.leases import DEFAULT_LEASE_S
from bot.storage.locks import ConversationLocks
from bot.storage.rate_counts import RateCounts

if TYPE_CHECKING:
    from bot.storage.knowledge import KnowledgeStore  # numpy: imported where an index is used


class Backend(ABC):
    """The state `storage` (a botbuilder `Storage`) and makers of what lives beside it.

    Each maker returns a new object, which its caller closes (the storage's connections are the
    storage's). Nothing connects until `open()` or first use.
    """

    scheme: ClassVar[str]  # how its URLs start: "memory", "sqlite", "postgresql", "redis"

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.storage!r})"

    async def open(self) -> None:
        """Connect now (and create or migrate the schema) where the storage has a server, so a
        database that cannot be reached stops the start with StorageUnavailable."""
        open_ = getattr(self.storage, "open", None)
        if open_ is not None:
            await open_()

    @abstractmethod
    def locks(self, *, lease_s: float = DEFAULT_LEASE_S) -> ConversationLocks:
        """Per-conversation locks that hold across the processes sharing the state.

        On SQLite, PostgreSQL and Redis they are leases of `lease_s` seconds, renewed while a
        turn runs: a process that dies frees its conversations within `lease_s`.
        """

    @abstractmethod
    def inbox(self) -> Inbox:
        """Where acknowledged activities wait for their turn: shared by the replicas that share
        the state, and surviving a restart where the state does."""

    @abstractmethod
    def rate_counts(self) -> RateCounts:
        """Per-user activity counts for the rate limit, shared by the replicas that share the
        state (in this process for memory://)."""

    def knowledge_store(self) -> KnowledgeStore:
        """The knowledge index in the same database (it connects on `open()` or first use).
        Raises StorageURLError where the backend keeps none (memory, Redis)."""
        raise StorageURLError(
            f"a {self.scheme}:// backend keeps no knowledge index; "
            "it lives in sqlite:///path.db or postgresql://…"
        )

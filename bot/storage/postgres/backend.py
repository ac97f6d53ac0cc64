"""The PostgreSQL backend (see `PostgresBackend`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.storage.backend import Backend
from bot.storage.leases import DEFAULT_LEASE_S
from bot.storage.postgres.inbox import PostgresInbox
from bot.storage.postgres.locks import PostgresLocks
from bot.storage.postgres.rate_counts import PostgresRateCounts

if TYPE_CHECKING:
    from bot.storage.postgres.knowledge import PostgresKnowledgeStore
    from bot.storage.postgres.storage import PostgresStorage


class PostgresBackend(Backend):
    """State in a `PostgresStorage`; the locks (leases of `lease_s`), inbox and rate counts in its
    database through its connection pool; the knowledge index in the same database and
    namespace, with a pool of its own."""

    scheme = "postgresql"
    storage: PostgresStorage

    def __init__(self, storage: PostgresStorage) -> None:
        super().__init__(storage)

    def locks(self, *, lease_s: float = DEFAULT_LEASE_S) -> PostgresLocks:
        return PostgresLocks(self.storage, lease_s=lease_s)

    def inbox(self) -> PostgresInbox:
        return PostgresInbox(self.storage)

    def rate_counts(self) -> PostgresRateCounts:
        return PostgresRateCounts(self.storage)

    def knowledge_store(self) -> PostgresKnowledgeStore:
        return self.storage.knowledge_store()

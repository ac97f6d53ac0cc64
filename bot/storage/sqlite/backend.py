"""The SQLite backend (see `SqliteBackend`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.storage.backend import Backend
from bot.storage.leases import DEFAULT_LEASE_S
from bot.storage.sqlite.inbox import SqliteInbox
from bot.storage.sqlite.locks import SqliteLocks
from bot.storage.sqlite.rate_counts import SqliteRateCounts

if TYPE_CHECKING:
    from bot.storage.sqlite.knowledge import SqliteKnowledgeStore
    from bot.storage.sqlite.storage import SqliteStorage


class SqliteBackend(Backend):
    """State in a `SqliteStorage`, and the locks (leases of `lease_s`), inbox, rate counts and
    knowledge index as tables in the same file, each with its own connection."""

    scheme = "sqlite"
    storage: SqliteStorage

    def __init__(self, storage: SqliteStorage) -> None:
        super().__init__(storage)

    def locks(self, *, lease_s: float = DEFAULT_LEASE_S) -> SqliteLocks:
        return SqliteLocks(self.storage.path, lease_s=lease_s)

    def inbox(self) -> SqliteInbox:
        return SqliteInbox(self.storage.path)

    def rate_counts(self) -> SqliteRateCounts:
        return SqliteRateCounts(self.storage.path)

    def knowledge_store(self) -> SqliteKnowledgeStore:
        from bot.storage.sqlite.knowledge import SqliteKnowledgeStore  # numpy only when used

        return SqliteKnowledgeStore(self.storage.path)

"""The inbox (bot/storage/inbox.py) in PostgreSQL (see `PostgresInbox`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.storage.inbox import InboxEntry

if TYPE_CHECKING:
    from bot.storage.postgres.storage import PostgresStorage


class PostgresInbox:
    """The inbox (bot/storage/inbox.py) as rows of `<namespace>_inbox`; seq from its bigserial."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage
        self._table = f"{storage.namespace}_inbox"

    async def put(self, conversation: str, activity_id: str | None, body: str) -> int | None:
        async with self._storage.connection() as conn:
            seq: int | None = await conn.fetchval(
                f"INSERT INTO {self._table} (conversation, activity_id, body) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING RETURNING seq",
                conversation,
                activity_id or "",
                body,
            )
        return seq

    async def first(self, conversation: str) -> InboxEntry | None:
        async with self._storage.connection() as conn:
            row = await conn.fetchrow(
                f"SELECT seq, activity_id, body FROM {self._table} WHERE conversation = $1 "
                "ORDER BY seq LIMIT 1",
                conversation,
            )
        return InboxEntry(row[0], conversation, row[1], row[2]) if row else None

    async def remove(self, entry: InboxEntry) -> None:
        async with self._storage.connection() as conn:
            await conn.execute(f"DELETE FROM {self._table} WHERE seq = $1", entry.seq)

    async def waiting_since(self, seconds: float, limit: int = 100) -> list[str]:
        async with self._storage.connection() as conn:
            rows = await conn.fetch(
                f"SELECT DISTINCT conversation FROM {self._table} "
                "WHERE accepted < clock_timestamp() - make_interval(secs => $1) LIMIT $2",
                float(seconds),
                limit,
            )
        return [row[0] for row in rows]

    async def close(self) -> None:
        """Nothing to close: the storage owns the connections."""

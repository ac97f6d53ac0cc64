"""Per-user message counts (bot/storage/rate_counts.py) in PostgreSQL: an upsert per message in
`<namespace>_rate_counts`; the first count of a new window drops the older windows' counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.storage.postgres.storage import PostgresStorage


class PostgresRateCounts:
    """Counts in `<namespace>_rate_counts`, created on first use."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage
        self._table = f"{storage.namespace}_rate_counts"
        self._created = False

    async def hit(self, key: str, window: int, ttl_s: float) -> int:
        async with self._storage.connection() as conn:
            if not self._created:
                async with conn.transaction():
                    # Replicas starting together would race on CREATE TABLE.
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._table)
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {self._table} (key text NOT NULL, "
                        "window_no bigint NOT NULL, count integer NOT NULL, "
                        "PRIMARY KEY (key, window_no))"
                    )
                self._created = True
            count: int = await conn.fetchval(
                f"INSERT INTO {self._table} (key, window_no, count) VALUES ($1, $2, 1) "
                "ON CONFLICT (key, window_no) DO UPDATE SET count = "
                f"{self._table}.count + 1 RETURNING count",
                key,
                window,
            )
            if count == 1:
                await conn.execute(f"DELETE FROM {self._table} WHERE window_no < $1", window)
        return count

    async def close(self) -> None:
        """Nothing to close: the storage owns the connections."""

"""Per-user message counts (bot/storage/rate_counts.py) in Redis: INCR on
`<namespace>:rate:<window>:<key>`, which expires `ttl_s` seconds (whole seconds, at least 1)
after its latest hit."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.storage.redis.storage import RedisStorage


class RedisRateCounts:
    """Counts as Redis keys that expire on their own."""

    def __init__(self, storage: RedisStorage) -> None:
        self._storage = storage

    async def hit(self, key: str, window: int, ttl_s: float) -> int:
        name = self._storage.key("rate", f"{window}:{key}")

        async def incr() -> int:
            async with self._storage.client.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, max(1, int(ttl_s)))
                count, _ = await pipe.execute()
            return int(count)

        return int(await self._storage.call(incr))

    async def close(self) -> None:
        """Nothing to close: the storage owns the connections."""

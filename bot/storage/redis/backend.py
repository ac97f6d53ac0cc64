"""The Redis backend (see `RedisBackend`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.storage.backend import Backend
from bot.storage.leases import DEFAULT_LEASE_S
from bot.storage.redis.inbox import RedisInbox
from bot.storage.redis.locks import RedisLocks
from bot.storage.redis.rate_counts import RedisRateCounts

if TYPE_CHECKING:
    from bot.storage.redis.storage import RedisStorage


class RedisBackend(Backend):
    """State in a `RedisStorage`; the locks (leases of `lease_s`), inbox and rate counts on the
    same server through its connection pool. It keeps no knowledge index."""

    scheme = "redis"
    storage: RedisStorage

    def __init__(self, storage: RedisStorage) -> None:
        super().__init__(storage)

    def locks(self, *, lease_s: float = DEFAULT_LEASE_S) -> RedisLocks:
        return RedisLocks(self.storage, lease_s=lease_s)

    def inbox(self) -> RedisInbox:
        return RedisInbox(self.storage)

    def rate_counts(self) -> RedisRateCounts:
        return RedisRateCounts(self.storage)

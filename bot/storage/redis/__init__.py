"""The Redis backend (redis://…, `RedisBackend`), for several replicas: bot state (storage.py),
conversation leases, the inbox and the rate limit's counts as keys under `<namespace>:`, each
change that touches several keys one Lua script. It keeps no knowledge index; the knowledge
setup then uses a SQLite file.
"""

from bot.storage.redis.backend import RedisBackend
from bot.storage.redis.inbox import RedisInbox
from bot.storage.redis.locks import RedisLocks
from bot.storage.redis.rate_counts import RedisRateCounts
from bot.storage.redis.storage import RedisStorage

__all__ = ["RedisBackend", "RedisInbox", "RedisLocks", "RedisRateCounts", "RedisStorage"]

"""Bot state in Redis, shared by replicas, and their conversation locks there.

Keys, under the namespace prefix (default "botloom"):
  <ns>:item:<key>   a hash {etag, value}: one state item (value as in bot/storage/values.py)
  <ns>:lock:<key>   a string "<fence>:<owner>" with an expiry: a conversation's lease
  <ns>:fences       a counter: the last fencing token handed out
  <ns>:schema       the layout's version
  <ns>:inbox:<key>  a sorted set of the seqs of a conversation's waiting activities (inbox.py)
  <ns>:entry:<seq>  a hash {conversation, activity_id, accepted, body}: one waiting activity
  <ns>:waiting:<key>:<activity id>  the seq of a waiting activity, to refuse a repeat
  <ns>:inbox        a sorted set of conversations with waiting activities (score: the oldest's
                    time in ms), <ns>:entries the last seq handed out

Redis keeps state only as durably as it is configured to: run it with AOF persistence
(`appendonly yes`) in production, or state is lost on restart. Writes touch several keys in one
script, so Redis Cluster is not supported (a primary with replicas and Sentinel is).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from bot.storage.errors import LockLost, StorageConflictError
from bot.storage.fencing import current_fence
from bot.storage.redis.backend import RedisBackend
from bot.storage.server_storage import ServerStorage
from bot.storage.values import loads, rows_to_write, set_etags

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_UNREACHABLE = (
    OSError,
    TimeoutError,
    redis_errors.ConnectionError,  # refused, dropped, bad login, still loading, no free connection
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # a replica after a failover
)

# KEYS: the n item keys, then the lock key. ARGV: n, the fence prefix ("<fence>:" or "" for
# none), then (expected etag or "", new etag, value) per item; "absent" (values.ABSENT) expects
# no item. Checks everything, then writes everything: all or nothing. Returns {0}; {-1} when the
# fence no longer holds the lock; or {i, stored etag or ""} for the first item whose etag does
# not match. An item already carrying its new etag counts as a match: redis-py retried a write
# whose reply was lost, and it is done.
_WRITE = """
local n = tonumber(ARGV[1])
local fence = ARGV[2]
if fence ~= '' then
  local held = redis.call('GET', KEYS[n + 1])
  if not held or string.sub(held, 1, #fence) ~= fence then return {-1} end
end
for i = 1, n do
  local expected = ARGV[3 * i]
  if expected == 'absent' then
    local stored = redis.call('HGET', KEYS[i], 'etag')
    if stored and stored ~= ARGV[3 * i + 1] then return {i, stored} end
  elseif expected ~= '' then
    local stored = redis.call('HGET', KEYS[i], 'etag')
    if stored ~= expected and stored ~= ARGV[3 * i + 1] then return {i, stored or ''} end
  end
end
for i = 1, n do
  redis.call('HSET', KEYS[i], 'etag', ARGV[3 * i + 1], 'value', ARGV[3 * i + 2])
end
return {0}
"""


class RedisStorage(ServerStorage):
    """A botbuilder `Storage` in Redis hashes, shared by replicas.

    Values and etags behave exactly as in `SqliteStorage` (bot/storage/values.py): `read` returns
    each item with its etag in `e_tag`; every write assigns a new etag and sets it on the written
    value; a value carrying an etag other than "*" is written only if that etag is still the
    stored one, else the whole `write` raises `StorageConflictError` and changes nothing; no etag
    or "*" overwrites. Each `write` is one Lua script, which Redis runs atomically. Inside a
    `RedisLocks.hold` on this storage, a write also checks that the lock is still held and raises
    `LockLost` if not.

    Connections come from a pool of up to `max_connections` (callers wait up to `timeout_s` for
    one); `open()` (or first use) checks the server answers. A server that cannot be reached, or
    answers nothing within `timeout_s`, raises `StorageUnavailable` naming host:port/db, never the
    password.
    """

    server = "Redis"
    default_port = 6379
    backend_type = RedisBackend
    default_max_connections = 20

    def _prepare(self) -> None:
        self._prefix = f"{self.namespace}:item:"
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url,
            max_connections=self._max_connections,
            timeout=self._timeout_s,  # to wait for a free connection
            socket_connect_timeout=self._timeout_s,
            # No socket_timeout: with one, redis-py writes through asyncio.wait_for, which on
            # Python 3.11 can swallow a cancellation (CPython gh-86296) and leave a cancelled
            # turn or heartbeat running. `call` bounds each operation with asyncio.timeout.
            socket_timeout=None,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            decode_responses=True,
        )
        self.client = aioredis.Redis(connection_pool=pool)
        self._write_script = self.client.register_script(_WRITE)
        self._opened = False

    def key(self, kind: str, key: str) -> str:
        """The Redis key of a state item ("item"), a lock ("lock") or another record."""
        return f"{self.namespace}:{kind}:{key}"

    async def call(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        """Run a Redis operation (for this storage's locks too); errors reaching the server
        become StorageUnavailable."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if not self._opened:
            await self.open()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await operation()
        except _UNREACHABLE as error:
            raise self.unavailable(error) from error

    async def open(self) -> None:
        """Check the server answers and record the layout version. Raises StorageUnavailable."""
        if self._opened:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await self.client.ping()
                await self.client.set(f"{self.namespace}:schema", SCHEMA_VERSION, nx=True)
                stored = int(await self.client.get(f"{self.namespace}:schema") or SCHEMA_VERSION)
        except _UNREACHABLE as error:
            raise self.unavailable(error) from None
        if stored > SCHEMA_VERSION:
            logger.warning(
                "Redis layout version %d is newer than this release's %d", stored, SCHEMA_VERSION
            )
        self._opened = True

    async def read(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self._prefix + key, ["etag", "value"])
        rows = await self.call(pipe.execute)
        return {
            key: loads(text, etag)
            for key, (etag, text) in zip(keys, rows, strict=True)
            if etag is not None
        }

    async def write(self, changes: dict[str, Any]) -> None:
        rows = rows_to_write(changes)
        if not rows:
            return
        etags = [uuid.uuid4().hex for _ in rows]
        fence = current_fence(self)
        keys = [self._prefix + key for key, _, _ in rows]
        keys.append(self.key("lock", fence.key) if fence else f"{self.namespace}:nolock")
        args: list[Any] = [len(rows), f"{fence.token}:" if fence else ""]
        for (_, expected, text), etag in zip(rows, etags, strict=True):
            args += [expected or "", etag, text]
        result = await self.call(partial(self._write_script, keys=keys, args=args))
        if result[0] == -1:
            assert fence is not None
            raise LockLost(fence.key, fence.token)
        if result[0] != 0:
            key, expected, _ = rows[int(result[0]) - 1]
            assert expected is not None
            raise StorageConflictError(key, expected, result[1] or None)
        set_etags(changes, etags)

    async def delete(self, keys: list[str]) -> None:
        if keys:
            await self.call(partial(self.client.delete, *(self._prefix + key for key in keys)))

    async def close(self) -> None:
        """Close the pool's connections; idempotent."""
        if not self._closed:
            self._closed = True
            await self.client.aclose()
            await self.client.connection_pool.disconnect()

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
from botbuilder.core import Storage
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from bot.storage.errors import LockLost, StorageConflictError, StorageUnavailable
from bot.storage.fencing import current_fence
from bot.storage.inbox import InboxEntry
from bot.storage.leases import DEFAULT_LEASE_S, QUEUE_TTL_S, LeaseLocks
from bot.storage.urls import check_namespace, scrub, where
from bot.storage.values import loads, rows_to_write, set_etag

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
# none), then (expected etag or "", new etag, value) per item. Checks everything, then writes
# everything: all or nothing. Returns {0}; {-1} when the fence no longer holds the lock; or
# {i, stored etag or ""} for the first item whose etag does not match. An item already carrying
# its new etag counts as a match: redis-py retried a write whose reply was lost, and it is done.
_WRITE = """
local n = tonumber(ARGV[1])
local fence = ARGV[2]
if fence ~= '' then
  local held = redis.call('GET', KEYS[n + 1])
  if not held or string.sub(held, 1, #fence) ~= fence then return {-1} end
end
for i = 1, n do
  local expected = ARGV[3 * i]
  if expected ~= '' then
    local stored = redis.call('HGET', KEYS[i], 'etag')
    if stored ~= expected and stored ~= ARGV[3 * i + 1] then return {i, stored or ''} end
  end
end
for i = 1, n do
  redis.call('HSET', KEYS[i], 'etag', ARGV[3 * i + 1], 'value', ARGV[3 * i + 2])
end
return {0}
"""

# The line of waiters for a conversation: <ns>:line:<key> holds tickets (score = ticket) and
# <ns>:lapse:<key> when each place lapses (score = ms on the server's clock).
# KEYS[1] the line, KEYS[2] the lapses, KEYS[3] the ticket counter; ARGV place ttl in ms.
_ENQUEUE = """
local now = redis.call('TIME')
local ticket = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], ticket, ticket)
redis.call('ZADD', KEYS[2], now[1] * 1000 + math.floor(now[2] / 1000) + ARGV[1], ticket)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return ticket
"""

# KEYS[1] the lock, KEYS[2] the line, KEYS[3] the lapses, KEYS[4] the fence counter; ARGV ticket,
# owner, lease in ms, place ttl in ms. Drops lapsed places, keeps this one; if it is first and
# the lock is free, takes the lock and leaves the line: the new fence, else 0.
_ACQUIRE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for _, lapsed in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. now)) do
  redis.call('ZREM', KEYS[2], lapsed)
  redis.call('ZREM', KEYS[3], lapsed)
end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('ZADD', KEYS[3], now + ARGV[4], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if redis.call('ZRANGE', KEYS[2], 0, 0)[1] ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local fence = redis.call('INCR', KEYS[4])
redis.call('SET', KEYS[1], fence .. ':' .. ARGV[2], 'PX', ARGV[3])
return fence
"""

# KEYS[1] the line, KEYS[2] the lapses; ARGV ticket.
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 0
"""

# KEYS[1] the lock; ARGV "<fence>:<owner>", lease in ms. 1 if renewed, 0 if lost.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS[1] the lock; ARGV "<fence>:<owner>". Deletes it only if it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStorage(Storage):
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

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "botloom",
        max_connections: int = 20,
        timeout_s: float = 5.0,
    ) -> None:
        self._url = url
        self.where = where(url, 6379)
        self.namespace = check_namespace(namespace)
        self._prefix = f"{namespace}:item:"
        self._timeout_s = timeout_s
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,  # to wait for a free connection
            socket_connect_timeout=timeout_s,
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
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisStorage({self.where!r}, namespace={self.namespace!r})"

    def key(self, kind: str, key: str) -> str:
        """The Redis key of a state item ("item"), a lock ("lock") or another record."""
        return f"{self.namespace}:{kind}:{key}"

    def unavailable(self, error: BaseException) -> StorageUnavailable:
        reason = scrub(str(error) or type(error).__name__, self._url)
        return StorageUnavailable(f"cannot reach Redis at {self.where}: {reason}")

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

    def conversation_locks(self, *, lease_s: float = DEFAULT_LEASE_S) -> RedisLocks:
        """Per-conversation leases in this database (see `RedisLocks`)."""
        return RedisLocks(self, lease_s=lease_s)

    def inbox(self) -> RedisInbox:
        """Acknowledged activities waiting for their turn, in this database."""
        return RedisInbox(self)

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
        for value, etag in zip(changes.values(), etags, strict=True):
            set_etag(value, etag)

    async def delete(self, keys: list[str]) -> None:
        if keys:
            await self.call(partial(self.client.delete, *(self._prefix + key for key in keys)))

    async def close(self) -> None:
        """Close the pool's connections; idempotent."""
        if not self._closed:
            self._closed = True
            await self.client.aclose()
            await self.client.connection_pool.disconnect()


class RedisLocks(LeaseLocks):
    """Conversation leases as keys holding "<fence>:<owner>" with an expiry, set only when free;
    renewal and release compare the value first (Lua), so a holder never extends or frees a lease
    it lost. Fences come from `INCR <ns>:fences`, so they grow across the server. Waiters stand in
    line in sorted sets (`_ENQUEUE`, `_ACQUIRE`), timed by the server's clock."""

    def __init__(self, storage: RedisStorage, *, lease_s: float = DEFAULT_LEASE_S) -> None:
        super().__init__(storage, lease_s=lease_s)
        self._storage = storage
        client = storage.client
        self._enqueue_script = client.register_script(_ENQUEUE)
        self._acquire_script = client.register_script(_ACQUIRE)
        self._leave_script = client.register_script(_LEAVE)
        self._renew_script = client.register_script(_RENEW)
        self._release_script = client.register_script(_RELEASE)
        self._fences = f"{storage.namespace}:fences"
        self._tickets = f"{storage.namespace}:tickets"

    def _line(self, key: str) -> list[str]:
        return [self._storage.key("line", key), self._storage.key("lapse", key)]

    async def _enqueue(self, key: str) -> int:
        keys = [*self._line(key), self._tickets]
        enqueue = partial(self._enqueue_script, keys=keys, args=[_ms(QUEUE_TTL_S)])
        return int(await self._storage.call(enqueue))

    async def _leave(self, key: str, ticket: int) -> None:
        leave = partial(self._leave_script, keys=self._line(key), args=[ticket])
        await self._storage.call(leave)

    def _token(self, fence: int) -> str:
        return f"{fence}:{self.owner}"

    async def _acquire(self, key: str, ticket: int, lease_s: float) -> int | None:
        keys = [self._storage.key("lock", key), *self._line(key), self._fences]
        args = [ticket, self.owner, _ms(lease_s), _ms(QUEUE_TTL_S)]
        fence = await self._storage.call(partial(self._acquire_script, keys=keys, args=args))
        return int(fence) or None

    async def _renew(self, key: str, fence: int, lease_s: float) -> bool:
        lock = self._storage.key("lock", key)
        renew = partial(self._renew_script, keys=[lock], args=[self._token(fence), _ms(lease_s)])
        return bool(await self._storage.call(renew))

    async def _release(self, key: str, fence: int) -> None:
        lock = self._storage.key("lock", key)
        await self._storage.call(
            partial(self._release_script, keys=[lock], args=[self._token(fence)])
        )


# The inbox. KEYS[1] the conversation's set, KEYS[2] the seq counter, KEYS[3] the set of
# conversations, KEYS[4] the activity id's key ("" without an id); ARGV conversation, activity id,
# body, the entry key prefix. The new seq, or 0 when the activity id is already waiting.
_INBOX_PUT = """
if KEYS[4] ~= '' and redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', ARGV[4] .. seq, 'conversation', ARGV[1], 'activity_id', ARGV[2],
           'accepted', now, 'body', ARGV[3])
redis.call('ZADD', KEYS[1], seq, seq)
redis.call('ZADD', KEYS[3], 'NX', now, ARGV[1])
if KEYS[4] ~= '' then redis.call('SET', KEYS[4], seq) end
return seq
"""
# KEYS[1] the conversation's set; ARGV the entry key prefix. {seq, activity id, body} of the
# oldest entry, or nil.
_INBOX_FIRST = """
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if not head then return nil end
local entry = redis.call('HMGET', ARGV[1] .. head, 'activity_id', 'body')
return {head, entry[1], entry[2]}
"""
# KEYS[1] the conversation's set, KEYS[2] the set of conversations, KEYS[3] the entry, KEYS[4]
# the activity id's key ("" without an id); ARGV seq, conversation, the entry key prefix.
_INBOX_REMOVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
if KEYS[4] ~= '' and redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if head then
  redis.call('ZADD', KEYS[2], 'XX', redis.call('HGET', ARGV[3] .. head, 'accepted'), ARGV[2])
else
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return 0
"""
# KEYS[1] the set of conversations; ARGV age in ms, limit.
_INBOX_WAITING = """
local t = redis.call('TIME')
local before = t[1] * 1000 + math.floor(t[2] / 1000) - ARGV[1]
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. before, 'LIMIT', 0, ARGV[2])
"""


class RedisInbox:
    """The inbox (bot/storage/inbox.py) in Redis; each operation is one script, so atomic."""

    def __init__(self, storage: RedisStorage) -> None:
        self._storage = storage
        client = storage.client
        self._put_script = client.register_script(_INBOX_PUT)
        self._first_script = client.register_script(_INBOX_FIRST)
        self._remove_script = client.register_script(_INBOX_REMOVE)
        self._waiting_script = client.register_script(_INBOX_WAITING)
        self._entry_prefix = f"{storage.namespace}:entry:"
        self._conversations = f"{storage.namespace}:inbox"

    def _waiting_key(self, conversation: str, activity_id: str) -> str:
        return self._storage.key("waiting", f"{conversation}:{activity_id}") if activity_id else ""

    async def put(self, conversation: str, activity_id: str | None, body: str) -> int | None:
        keys = [
            self._storage.key("inbox", conversation),
            f"{self._storage.namespace}:entries",
            self._conversations,
            self._waiting_key(conversation, activity_id or ""),
        ]
        args = [conversation, activity_id or "", body, self._entry_prefix]
        seq = int(await self._storage.call(partial(self._put_script, keys=keys, args=args)))
        return seq or None

    async def first(self, conversation: str) -> InboxEntry | None:
        keys = [self._storage.key("inbox", conversation)]
        found = await self._storage.call(
            partial(self._first_script, keys=keys, args=[self._entry_prefix])
        )
        if not found:
            return None
        seq, activity_id, body = found
        return InboxEntry(int(seq), conversation, activity_id, body)  # decoded: decode_responses

    async def remove(self, entry: InboxEntry) -> None:
        keys = [
            self._storage.key("inbox", entry.conversation),
            self._conversations,
            f"{self._entry_prefix}{entry.seq}",
            self._waiting_key(entry.conversation, entry.activity_id),
        ]
        args = [entry.seq, entry.conversation, self._entry_prefix]
        await self._storage.call(partial(self._remove_script, keys=keys, args=args))

    async def waiting_since(self, seconds: float, limit: int = 100) -> list[str]:
        waiting = partial(
            self._waiting_script, keys=[self._conversations], args=[_ms(seconds), limit]
        )
        return list(await self._storage.call(waiting))

    async def close(self) -> None:
        """Nothing to close: the storage owns the connections."""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))

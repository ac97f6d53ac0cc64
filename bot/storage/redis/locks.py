"""Conversation leases in Redis (see `RedisLocks`): keys with expiries, set and renewed by Lua."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from bot.storage.leases import DEFAULT_LEASE_S, QUEUE_TTL_S, LeaseLocks

if TYPE_CHECKING:
    from bot.storage.redis.storage import RedisStorage

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
        enqueue = partial(self._enqueue_script, keys=keys, args=[milliseconds(QUEUE_TTL_S)])
        return int(await self._storage.call(enqueue))

    async def _leave(self, key: str, ticket: int) -> None:
        leave = partial(self._leave_script, keys=self._line(key), args=[ticket])
        await self._storage.call(leave)

    def _token(self, fence: int) -> str:
        return f"{fence}:{self.owner}"

    async def _acquire(self, key: str, ticket: int, lease_s: float) -> int | None:
        keys = [self._storage.key("lock", key), *self._line(key), self._fences]
        args = [ticket, self.owner, milliseconds(lease_s), milliseconds(QUEUE_TTL_S)]
        fence = await self._storage.call(partial(self._acquire_script, keys=keys, args=args))
        return int(fence) or None

    async def _renew(self, key: str, fence: int, lease_s: float) -> bool:
        lock = self._storage.key("lock", key)
        renew = partial(
            self._renew_script, keys=[lock], args=[self._token(fence), milliseconds(lease_s)]
        )
        return bool(await self._storage.call(renew))

    async def _release(self, key: str, fence: int) -> None:
        lock = self._storage.key("lock", key)
        await self._storage.call(
            partial(self._release_script, keys=[lock], args=[self._token(fence)])
        )


def milliseconds(seconds: float) -> int:
    """At least 1 ms: Redis refuses an expiry of 0."""
    return max(1, round(seconds * 1000))

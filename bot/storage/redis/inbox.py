"""The inbox (bot/storage/inbox.py) in Redis; each operation is one Lua script, so atomic."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from bot.storage.inbox import InboxEntry
from bot.storage.redis.locks import milliseconds

if TYPE_CHECKING:
    from bot.storage.redis.storage import RedisStorage

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
            self._waiting_script, keys=[self._conversations], args=[milliseconds(seconds), limit]
        )
        return list(await self._storage.call(waiting))

    async def close(self) -> None:
        """Nothing to close: the storage owns the connections."""

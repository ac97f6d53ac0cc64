"""Token usage per user and tenant, per UTC day, in the bot's storage; the daily quota's reads.

Replies add their tokens here in memory; a background flush writes them at most every
`flush_s` seconds (and at close), so a busy bot writes once per user per flush, not per reply.
One record per user and day (`botloom/usage/<day>/<user>`: tenant, input and output tokens,
turns), written with the etag it was read with, so replicas add up rather than overwrite; and one
index per day (`botloom/usage/<day>`: the users with a record) for `botloom usage`. Users are the
channel's vouched identity (bot/turns/identity.py) or, where no one vouches, `<channel>/users/
<from.id>`; tenants are Teams' tenant id (empty elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botbuilder.core import Storage, TurnContext
from botbuilder.schema import Activity

from bot.storage import StorageConflictError
from bot.storage.errors import pause_after_conflict
from bot.storage.values import ABSENT, etag_of
from dialogs.memory.user_store import USER_IDENTITY_KEY

logger = logging.getLogger(__name__)

PREFIX = "botloom/usage"
WRITE_TRIES = 5


@dataclass(frozen=True)
class Usage:
    day: str  # YYYY-MM-DD, UTC
    user: str
    tenant: str
    input_tokens: int
    output_tokens: int
    turns: int

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def user_of(turn_context: TurnContext) -> str:
    """Whom a turn's tokens are counted for."""
    vouched = turn_context.turn_state.get(USER_IDENTITY_KEY)
    if vouched:
        return str(vouched)
    activity = turn_context.activity
    sender = activity.from_property.id if activity.from_property else "unknown"
    return f"{activity.channel_id}/users/{sender}"


def tenant_of(activity: Activity) -> str:
    """Teams' tenant id (the conversation's, else the channel data's); "" elsewhere."""
    tenant = getattr(activity.conversation, "tenant_id", None) if activity.conversation else None
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    return str(tenant or (data.get("tenant") or {}).get("id") or "")


def today() -> date:
    return datetime.now(UTC).date()


class UsageStore:
    """Reads and adds up token usage in a botbuilder Storage. Call `close()` before the storage
    closes: it writes what is still pending."""

    def __init__(self, storage: Storage, *, flush_s: float = 2.0) -> None:
        self._storage = storage
        self._flush_s = flush_s
        self._pending: dict[tuple[str, str], Counter[str]] = {}  # (day, user) -> tokens, turns
        self._tenants: dict[tuple[str, str], str] = {}
        self._writing: dict[tuple[str, str], Counter[str]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._indexed: set[tuple[str, str]] = set()  # (day, user) seen in the day's index
        self._flushing: asyncio.Future[None] | None = None

    def add(self, user: str, tenant: str, input_tokens: int, output_tokens: int) -> None:
        """Count one reply's tokens for the user today; written by the next flush."""
        key = (today().isoformat(), user)
        self._pending.setdefault(key, Counter()).update(
            input=input_tokens, output=output_tokens, turns=1
        )
        if tenant:
            self._tenants[key] = tenant
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    async def close(self) -> None:
        """Write what is pending now."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._flush_s)
        # close() cancels this task: a flush under way still finishes (its counts are taken
        # out of pending while written), and close()'s own flush waits for it on the lock
        self._flushing = asyncio.ensure_future(self.flush())  # held: not collected mid-write
        await asyncio.shield(self._flushing)

    async def flush(self) -> None:
        """Write every pending count into its record (logged, never raised; a count that could
        not be written waits for the next flush)."""
        async with self._lock:
            self._writing, self._pending = self._pending, {}
            for day, user in list(self._writing):
                counts = self._writing[(day, user)]
                tenant = self._tenants.pop((day, user), "")
                try:
                    await self._write(day, user, tenant, counts)
                except Exception:
                    logger.exception("could not record token usage")
                    self._pending.setdefault((day, user), Counter()).update(counts)
                finally:
                    del self._writing[(day, user)]  # stored now, or pending again

    async def _write(self, day: str, user: str, tenant: str, counts: Counter[str]) -> None:
        key = f"{PREFIX}/{day}/{user}"
        for attempt in range(WRITE_TRIES):
            record = (await self._storage.read([key])).get(key)
            value = dict(record or {"tenant": tenant, "input": 0, "output": 0, "turns": 0})
            for name in ("input", "output", "turns"):
                value[name] += counts[name]
            value["tenant"] = tenant or value.get("tenant", "")
            value["e_tag"] = etag_of(record) or ABSENT  # created once, whoever comes first
            try:
                await self._storage.write({key: value})
            except (StorageConflictError, KeyError):
                await pause_after_conflict(attempt)  # another replica wrote: add to what it wrote
                continue
            if (day, user) not in self._indexed:  # until this process saw it there
                try:  # the counts are stored: a failing index must not have them added again
                    await self._index(day, user)
                except Exception:
                    logger.warning("usage index not written for %s: tried again later", day)
            return
        raise StorageConflictError(f"the usage record {key!r} kept changing")

    async def tokens_today(self, user: str) -> int:
        """The user's tokens today: stored, and counted here but not yet written."""
        day = today().isoformat()
        key = f"{PREFIX}/{day}/{user}"
        record = (await self._storage.read([key])).get(key)
        stored = int(record["input"] + record["output"]) if record else 0
        waiting = [c.get((day, user)) for c in (self._pending, self._writing)]
        return stored + sum(c["input"] + c["output"] for c in waiting if c is not None)

    async def since(self, first: date, last: date | None = None) -> list[Usage]:
        """Every user's usage per day from `first` to `last` (today) inclusive."""
        last = last or today()
        found: list[Usage] = []
        day = first
        while day <= last:
            index_key = f"{PREFIX}/{day.isoformat()}"
            index = (await self._storage.read([index_key])).get(index_key) or {}
            keys = [f"{index_key}/{user}" for user in index.get("users", [])]
            records = await self._storage.read(keys) if keys else {}
            for user in index.get("users", []):
                record = records.get(f"{index_key}/{user}")
                if record:
                    found.append(
                        Usage(
                            day.isoformat(),
                            user,
                            str(record.get("tenant", "")),
                            int(record["input"]),
                            int(record["output"]),
                            int(record["turns"]),
                        )
                    )
            day += timedelta(days=1)
        return found

    async def _index(self, day: str, user: str) -> None:
        """Add `user` to the day's index; where it keeps conflicting, the next write of the
        user's usage tries again (the record is counted either way)."""
        key = f"{PREFIX}/{day}"
        for attempt in range(WRITE_TRIES):
            index = (await self._storage.read([key])).get(key)
            value: dict[str, Any] = dict(index or {"users": []})
            if user not in value["users"]:
                value["users"] = [*value["users"], user]
                value["e_tag"] = etag_of(index) or ABSENT
                try:
                    await self._storage.write({key: value})
                except (StorageConflictError, KeyError):
                    await pause_after_conflict(attempt)
                    continue
            self._indexed = {seen for seen in self._indexed if seen[0] == day}  # today's only
            self._indexed.add((day, user))
            return
        logger.warning("usage index write kept conflicting for %s: tried again later", day)

"""Token usage per user and tenant, per UTC day, in the bot's storage; the daily quota's reads.

One record per user and day (`botloom/usage/<day>/<user>`: tenant, input and output tokens,
turns), written with the etag it was read with, so replicas add up rather than overwrite; and one
index per day (`botloom/usage/<day>`: the users with a record) for `botloom usage`. Users are the
channel's vouched identity (bot/turns/identity.py) or, where no one vouches, `<channel>/users/
<from.id>`; tenants are Teams' tenant id (empty elsewhere).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botbuilder.core import Storage, TurnContext
from botbuilder.schema import Activity

from bot.storage import StorageConflictError
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
    """Reads and adds up token usage in a botbuilder Storage."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def add(self, user: str, tenant: str, input_tokens: int, output_tokens: int) -> None:
        """Add one reply's tokens to the user's record for today (logged, never raised)."""
        day = today().isoformat()
        key = f"{PREFIX}/{day}/{user}"
        try:
            for _ in range(WRITE_TRIES):
                record = (await self._storage.read([key])).get(key)
                first = record is None
                value = dict(record or {"tenant": tenant, "input": 0, "output": 0, "turns": 0})
                value["input"] += input_tokens
                value["output"] += output_tokens
                value["turns"] += 1
                value["tenant"] = tenant or value.get("tenant", "")
                value["e_tag"] = _etag(record) or "*"
                try:
                    await self._storage.write({key: value})
                except (StorageConflictError, KeyError):
                    continue
                if first:
                    await self._index(day, user)
                return
            logger.warning("usage write kept conflicting user record for %s", day)
        except Exception:
            logger.exception("could not record token usage")

    async def tokens_today(self, user: str) -> int:
        key = f"{PREFIX}/{today().isoformat()}/{user}"
        record = (await self._storage.read([key])).get(key)
        return int(record["input"] + record["output"]) if record else 0

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
        key = f"{PREFIX}/{day}"
        for _ in range(WRITE_TRIES):
            index = (await self._storage.read([key])).get(key)
            value: dict[str, Any] = dict(index or {"users": []})
            if user in value["users"]:
                return
            value["users"] = [*value["users"], user]
            value["e_tag"] = _etag(index) or "*"
            try:
                await self._storage.write({key: value})
                return
            except (StorageConflictError, KeyError):
                continue
        logger.warning("usage index write kept conflicting for %s", day)


def _etag(record: Any) -> str | None:
    etag = record.get("e_tag") if isinstance(record, dict) else None
    return None if etag in (None, "", "*") else str(etag)

"""What botloom keeps about each user: facts, in one storage record per user, across all of the
user's conversations on a channel.

The record's key is the identity the channel vouches for, which bot/ decides once per turn and
puts in the TurnContext's turn_state under USER_IDENTITY_KEY: `<identity>/memory` (on Teams
`msteams/users/aad:<Entra object id>`, the same in every chat and team). A sender no channel
vouches for (the Emulator, a Web Chat page: their `from.id` is whatever the client says) gets
memory of the conversation only, `<channel>/conversations/<id>/users/<from.id>/memory`, so a
spoofed id never reaches another conversation's memory (and in a group chat each member still
has their own). Each update reads
the record, changes it and writes it back with the etag it read; when another replica wrote in
between (a conflict), it reads again and re-applies the change, so concurrent updates of one user
are all kept. The first write of a user's record has no etag to check (the storages have no
"create if absent"). Bounded: at most MAX_FACTS facts (the oldest go first), each at most
MAX_FACT_CHARS characters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botbuilder.core import Storage, TurnContext

from dialogs.memory.user_facts import MAX_FACT_CHARS, Fact

logger = logging.getLogger(__name__)

MAX_FACTS = 30  # kept per user; the prompt shows the newest PROMPT_FACTS
PROMPT_FACTS = 12
MAX_TRIES = 5  # read-change-write rounds before an update gives up (MemoryConflict)

Change = Callable[[list[dict[str, str]]], list[dict[str, str]]]


class MemoryConflict(Exception):
    """Other writers kept winning: the update was not stored after MAX_TRIES rounds."""


USER_IDENTITY_KEY = "botloom.user_identity"
"""turn_state key: the sender as the channel vouches for them, `<channel>/users/<id>` (a str), set
by bot/ before the dialogs run; absent or None when no one vouches for the sender."""


def memory_key(turn_context: TurnContext) -> str | None:
    """The storage key of the sender's memory: the vouched identity's, else the sender's within
    this conversation; None when the activity names no sender."""
    identity = turn_context.turn_state.get(USER_IDENTITY_KEY)
    if isinstance(identity, str) and identity:
        return f"{identity}/memory"
    activity = turn_context.activity
    sender = activity.from_property
    conversation = activity.conversation.id if activity.conversation else None
    if sender is None or not sender.id or not conversation:
        return None
    channel = (activity.channel_id or "").lower()
    return f"{channel}/conversations/{conversation}/users/{sender.id}/memory"


class UserMemory:
    """Reads and updates the facts kept about the sender of a turn.

    `conflicts` are the exception types the storage raises for a stale etag (botloom's
    StorageConflictError; botbuilder's MemoryStorage raises KeyError).
    """

    def __init__(
        self, storage: Storage, conflicts: tuple[type[BaseException], ...] = (KeyError,)
    ) -> None:
        self._storage = storage
        self._conflicts = conflicts

    async def facts(self, turn_context: TurnContext) -> list[dict[str, str]]:
        """The sender's facts, oldest first ([] when none or no sender)."""
        key = memory_key(turn_context)
        if key is None:
            return []
        record = (await self._storage.read([key])).get(key)
        return _facts_of(record)

    async def add(self, turn_context: TurnContext, facts: list[Fact]) -> list[dict[str, str]]:
        """Keep `facts`: each replaces a kept fact with the same key (newest wins)."""
        if not facts:
            return await self.facts(turn_context)
        at = datetime.now(UTC).isoformat(timespec="seconds")

        def change(kept: list[dict[str, str]]) -> list[dict[str, str]]:
            keys = {fact.key for fact in facts}
            kept = [item for item in kept if item.get("key") not in keys]
            return [*kept, *({**fact.as_dict(), "at": at} for fact in facts)]

        return await self.update(turn_context, change)

    async def replace(
        self, turn_context: TurnContext, facts: list[Fact], replaced: set[str]
    ) -> list[dict[str, str]]:
        """Keep `facts` in place of the kept facts whose texts are in `replaced` (and of those
        with the same key, as `add` does)."""
        at = datetime.now(UTC).isoformat(timespec="seconds")

        def change(kept: list[dict[str, str]]) -> list[dict[str, str]]:
            keys = {fact.key for fact in facts}
            kept = [f for f in kept if f.get("key") not in keys and f.get("text") not in replaced]
            return [*kept, *({**fact.as_dict(), "at": at} for fact in facts)]

        return await self.update(turn_context, change)

    async def forget(
        self, turn_context: TurnContext, which: Callable[[dict[str, str]], bool]
    ) -> int:
        """Remove the facts `which` selects; returns how many were removed."""
        removed = 0

        def change(kept: list[dict[str, str]]) -> list[dict[str, str]]:
            nonlocal removed
            left = [item for item in kept if not which(item)]
            removed = len(kept) - len(left)
            return left

        await self.update(turn_context, change)
        return removed

    async def update(self, turn_context: TurnContext, change: Change) -> list[dict[str, str]]:
        """Apply `change` to the stored facts with optimistic concurrency; returns what was stored.

        Raises MemoryConflict after MAX_TRIES lost races; storage errors propagate."""
        key = memory_key(turn_context)
        if key is None:
            return []
        for _ in range(MAX_TRIES):
            record = (await self._storage.read([key])).get(key)
            facts = _bounded(change(_facts_of(record)))
            value: dict[str, Any] = {"facts": facts}
            value["e_tag"] = _etag_of(record) or "*"  # "*": a first write (see the docstring)
            try:
                await self._storage.write({key: value})
            except self._conflicts:
                logger.info("user memory changed meanwhile; applying the change again")
                continue
            return facts
        raise MemoryConflict(f"the memory at {key!r} kept changing")


def _facts_of(record: Any) -> list[dict[str, str]]:
    facts = record.get("facts") if isinstance(record, dict) else getattr(record, "facts", None)
    if not isinstance(facts, list):
        return []
    return [
        {
            "key": str(item["key"]),
            "text": str(item["text"])[:MAX_FACT_CHARS],
            "at": str(item.get("at", "")),
            **({"said": str(item["said"])[:MAX_FACT_CHARS]} if item.get("said") else {}),
        }
        for item in facts
        if isinstance(item, dict) and "key" in item and "text" in item
    ]


def _etag_of(record: Any) -> str | None:
    if record is None:
        return None
    etag = record.get("e_tag") if isinstance(record, dict) else getattr(record, "e_tag", None)
    return None if etag in (None, "", "*") else str(etag)


def _bounded(facts: list[dict[str, str]]) -> list[dict[str, str]]:
    return facts[-MAX_FACTS:]


def memory_block(facts: list[dict[str, str]]) -> str:
    """The prompt's paragraph about the user, in the third person ("" when nothing is kept)."""
    if not facts:
        return ""
    lines = "\n".join(f"- {item['text']}" for item in facts[-PROMPT_FACTS:])
    return (
        "What you know about the user you are chatting with (they told you this; it is about "
        f"them, not about you):\n{lines}"
    )

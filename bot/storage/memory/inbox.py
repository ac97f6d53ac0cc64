"""The inbox (bot/storage/inbox.py) in this process's memory, for state that lives there."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bot.storage.inbox import InboxEntry


@dataclass
class MemoryInbox:
    """For state that lives in one process (memory://): the inbox dies with it, as state does."""

    _entries: dict[str, dict[int, tuple[InboxEntry, float]]] = field(default_factory=dict)
    _seq: int = 0

    async def put(self, conversation: str, activity_id: str | None, body: str) -> int | None:
        waiting = self._entries.setdefault(conversation, {})
        if activity_id and any(e.activity_id == activity_id for e, _ in waiting.values()):
            return None
        self._seq += 1
        waiting[self._seq] = (
            InboxEntry(self._seq, conversation, activity_id or "", body),
            time.monotonic(),
        )
        return self._seq

    async def first(self, conversation: str) -> InboxEntry | None:
        waiting = self._entries.get(conversation)
        return waiting[min(waiting)][0] if waiting else None

    async def remove(self, entry: InboxEntry) -> None:
        waiting = self._entries.get(entry.conversation, {})
        waiting.pop(entry.seq, None)
        if not waiting:
            self._entries.pop(entry.conversation, None)

    async def waiting_since(self, seconds: float, limit: int = 100) -> list[str]:
        oldest = time.monotonic() - seconds
        found = [
            conversation
            for conversation, waiting in self._entries.items()
            if min(accepted for _, accepted in waiting.values()) < oldest
        ]
        return found[:limit]

    async def close(self) -> None:
        return None

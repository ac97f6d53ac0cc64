"""The inbox: every acknowledged activity, kept in the shared store until a turn has run it.

The endpoint puts an activity here before it answers 202, so an acknowledged message outlives
the replica that acknowledged it. Turns are then taken from the inbox, oldest first, by whichever
replica holds the conversation's lock (bot/turns/runner.py): the order of a conversation is the
order its messages were acknowledged, whichever replicas they reached. An entry leaves the inbox
once its turn has run, so delivery is at least once: a replica killed between a turn's end and
the entry's removal has that turn run again by the next holder.

Entries carry the activity (message text included) only until their turn has run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class InboxEntry:
    seq: int  # grows with every entry put in the store: the order of acknowledgement
    conversation: str
    activity_id: str  # "" when the activity had none
    body: str  # what the endpoint stored: the activity and how it was authenticated (JSON)


class Inbox(Protocol):
    async def put(self, conversation: str, activity_id: str | None, body: str) -> int | None:
        """Store an entry durably; its seq, or None if this activity id is already waiting."""
        ...

    async def first(self, conversation: str) -> InboxEntry | None:
        """The conversation's oldest waiting entry."""
        ...

    async def remove(self, entry: InboxEntry) -> None:
        """The entry's turn has run (idempotent)."""
        ...

    async def waiting_since(self, seconds: float, limit: int = 100) -> list[str]:
        """Conversations with an entry that has waited longer than `seconds`: their replica may
        have died, so another must take them up."""
        ...

    async def close(self) -> None: ...

"""The feedback store: every rating of a reply, kept in the bot's own storage (SQLite, PostgreSQL,
Redis: whatever BOTLOOM_STORAGE names) as an append-only log of ordinary storage items:

  feedback/index    {"count": n}
  feedback/<page>   {"entries": [...]}, up to PAGE_SIZE each

An entry: ``at`` (UTC, ISO 8601), ``source`` (``teams-button``, ``reaction`` or ``/feedback``),
``channel``, ``conversation``, ``reply_id`` (the reply it rates; None for /feedback), ``reaction``
(``like``, ``dislike``, a reaction's type, or a /feedback rating), ``text`` (the user's comment),
and, only where transcripts are ``full``, ``prompt`` and ``reply`` (looked up in the transcript).
`export_feedback` yields entries as `botloom feedback export` writes them (JSON Lines).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from botbuilder.core import Storage, TurnContext

from bot.storage import StorageConflictError
from bot.turns.transcripts import export_transcript

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
INDEX_KEY = "feedback/index"
WRITE_TRIES = 5


def page_key(page: int) -> str:
    return f"feedback/{page:06d}"


class FeedbackStore:
    """Appends feedback entries; `transcripts` is BOTLOOM_TRANSCRIPTS (prompt and reply text are
    kept only when it is ``full``). A failed write is logged and never fails the turn."""

    def __init__(
        self,
        storage: Storage,
        *,
        transcripts: str = "off",
        on_record: Callable[[str], None] | None = None,
    ) -> None:
        self._storage = storage
        self._on_record = on_record  # told each reaction (bot/observability counts them)
        self._full = transcripts == "full"

    async def record(
        self,
        *,
        source: str,
        channel: str | None,
        conversation: str | None,
        reply_id: str | None,
        reaction: str,
        text: str = "",
    ) -> dict[str, Any]:
        """Store one entry and return it."""
        entry: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": source,
            "channel": channel,
            "conversation": conversation,
            "reply_id": reply_id,
            "reaction": reaction,
            "text": text,
        }
        if self._on_record is not None:
            self._on_record(reaction)
        if self._full and channel and conversation and reply_id:
            entry.update(await self._exchange(channel, conversation, reply_id))
        for _ in range(WRITE_TRIES):
            try:
                await self._append(entry)
                return entry
            except StorageConflictError:
                continue
            except Exception:
                logger.exception("could not store feedback conversation=%s", conversation)
                return entry
        logger.warning("feedback write kept conflicting conversation=%s", conversation)
        return entry

    async def record_rating(self, turn_context: TurnContext, entry: dict[str, str]) -> None:
        """A /feedback rating (FeedbackDialog's `on_saved`)."""
        activity = turn_context.activity
        await self.record(
            source="/feedback",
            channel=activity.channel_id,
            conversation=activity.conversation.id if activity.conversation else None,
            reply_id=None,
            reaction=str(entry.get("rating", "")).lower(),
            text=str(entry.get("comment", "")),
        )

    async def _append(self, entry: dict[str, Any]) -> None:
        index = (await self._storage.read([INDEX_KEY])).get(INDEX_KEY) or {"count": 0}
        count = index["count"]
        key = page_key(count // PAGE_SIZE)
        page = (await self._storage.read([key])).get(key) or {"entries": [], "e_tag": "*"}
        page["entries"].append(entry)
        index["count"] = count + 1
        await self._storage.write({key: page, INDEX_KEY: index})  # the index's etag guards it

    async def _exchange(self, channel: str, conversation: str, reply_id: str) -> dict[str, str]:
        """The rated reply's text and the message it answered, from the full transcript."""
        activities = await export_transcript(self._storage, channel, conversation)
        by_id = {a.get("id"): a for a in activities if a.get("id")}
        reply = by_id.get(reply_id) or next(
            (
                a
                for a in activities
                if isinstance(a.get("channelData"), dict)
                and a["channelData"].get("streamId") == reply_id
                and a.get("type") == "message"
            ),
            None,
        )
        if reply is None:
            return {}
        prompt = by_id.get(reply.get("replyToId")) or {}
        return {"prompt": prompt.get("text") or "", "reply": reply.get("text") or ""}


async def export_feedback(
    storage: Storage, since: datetime | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Every stored entry, oldest first; with `since`, only those at or after it."""
    index = (await storage.read([INDEX_KEY])).get(INDEX_KEY) or {"count": 0}
    pages = -(-index["count"] // PAGE_SIZE)
    for page in range(pages):
        stored = (await storage.read([page_key(page)])).get(page_key(page)) or {}
        for entry in stored.get("entries", []):
            if since is None or datetime.fromisoformat(entry["at"]) >= since:
                yield entry

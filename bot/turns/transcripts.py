"""Transcripts: every turn's activities kept in the bot's own storage, for operators to read or
export (BOTLOOM_TRANSCRIPTS=redacted or full; off by default).

They live beside the state, in whatever store BOTLOOM_STORAGE names (SQLite, PostgreSQL, Redis),
as ordinary storage items:
  transcripts/<channel>/<conversation>/index    {"pages": n, "count": activities so far}
  transcripts/<channel>/<conversation>/<page>   {"activities": [...]}, up to PAGE_SIZE each
Activities are in the Bot Framework's JSON (camelCase), as the Emulator's .transcript files hold
them, so `export_transcript` output opens in the Emulator and replays with `botloom test`.

`redacted` keeps no personal data: no text, names, ids of people, attachments or channel data;
only the shape of the conversation (who spoke when, activity types, text lengths). `full` keeps
every activity as sent and received: turn it on only where your privacy policy allows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from botbuilder.core import Middleware, Storage, TurnContext
from botbuilder.schema import Activity, ActivityTypes

from bot.settings import SettingsError
from bot.storage import StorageConflictError
from bot.turns.teams_rules import addressed_to_bot

logger = logging.getLogger(__name__)

MODES = ("off", "redacted", "full")
PAGE_SIZE = 50
_LEFT_OUT = (ActivityTypes.typing, ActivityTypes.trace)  # progress and debugging, not the talk
# turn_state key: this turn only sends a notice about its activity, which its own turn records.
NOTICE_ONLY = "botloom.notice_only"
_KEPT = ("type", "id", "timestamp", "channelId", "replyToId", "locale", "textFormat", "name")


def check_mode(mode: str) -> str:
    """`mode` if it is one of MODES, else SettingsError naming BOTLOOM_TRANSCRIPTS."""
    if mode not in MODES:
        raise SettingsError(f"BOTLOOM_TRANSCRIPTS must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def transcript_key(channel_id: str, conversation_id: str, part: str) -> str:
    return f"transcripts/{channel_id}/{conversation_id}/{part}"


def redact(activity: dict[str, Any]) -> dict[str, Any]:
    """The activity without personal data: its shape, the speaker's role, the text's length."""
    kept = {name: activity[name] for name in _KEPT if name in activity}
    kept["conversation"] = {"id": (activity.get("conversation") or {}).get("id")}
    for side in ("from", "recipient"):
        if role := (activity.get(side) or {}).get("role"):
            kept[side] = {"role": role}
    if isinstance(activity.get("text"), str):
        kept["text"] = f"[{len(activity['text'])} characters]"
    if attachments := activity.get("attachments"):
        kept["attachments"] = [{"contentType": a.get("contentType")} for a in attachments]
    return kept


class TranscriptMiddleware(Middleware):
    """Records the turn's incoming activity and what the bot sent (not typing or traces), then
    appends them to the conversation's transcript at the end of the turn, even a failed one. A
    transcript that cannot be written is logged and never fails the turn."""

    def __init__(self, storage: Storage, mode: str) -> None:
        if check_mode(mode) == "off":
            raise ValueError("a transcript middleware needs mode 'redacted' or 'full'")
        self._storage = storage
        self._redacted = mode == "redacted"

    async def on_turn(self, context: TurnContext, logic: Callable[[], Awaitable]) -> None:
        if context.activity.type == ActivityTypes.message and not addressed_to_bot(
            context.activity
        ):
            await logic()  # a group message for others (Teams delivers them all): not kept
            return
        recorded = [self._record(context.activity)]

        async def record_sent(
            ctx: TurnContext, activities: list[Activity], next_send: Callable[[], Awaitable]
        ):  # type: ignore[no-untyped-def]
            responses = await next_send()
            for index, activity in enumerate(activities):
                if activity.type not in _LEFT_OUT:
                    response = responses[index] if responses and index < len(responses) else None
                    recorded.append(self._record(activity, sent_id=getattr(response, "id", None)))
            return responses

        context.on_send_activities(record_sent)
        try:
            await logic()
        finally:
            activity = context.activity
            if context.turn_state.get(NOTICE_ONLY):
                recorded = recorded[1:]
            if activity.conversation is not None and activity.channel_id:
                await self._append(activity.channel_id, activity.conversation.id, recorded)

    def _record(self, activity: Activity, *, sent_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = activity.serialize()
        body.setdefault("timestamp", datetime.now(UTC).isoformat())
        if sent_id:
            body["id"] = sent_id
        return redact(body) if self._redacted else body

    async def _append(
        self, channel_id: str, conversation_id: str, activities: list[dict[str, Any]]
    ) -> None:
        for _ in range(
            3
        ):  # the turn holds the conversation lock: a conflict is a "one moment" turn
            try:
                await append_activities(self._storage, channel_id, conversation_id, activities)
                return
            except StorageConflictError:
                continue
            except Exception:
                logger.exception("could not write the transcript conversation=%s", conversation_id)
                return
        logger.warning("transcript write kept conflicting conversation=%s", conversation_id)


async def append_activities(
    storage: Storage, channel_id: str, conversation_id: str, activities: list[dict[str, Any]]
) -> None:
    """Append to a transcript in one write (index and pages together, etag-checked).

    Raises StorageConflictError when another writer appended in between; re-read and retry.
    """
    index_key = transcript_key(channel_id, conversation_id, "index")
    index = (await storage.read([index_key])).get(index_key) or {"pages": 0, "count": 0}
    changes: dict[str, Any] = {}
    count = index["count"]
    for activity in activities:
        page_key = transcript_key(channel_id, conversation_id, f"{count // PAGE_SIZE:06d}")
        if page_key not in changes:
            stored = (await storage.read([page_key])).get(page_key)
            changes[page_key] = stored or {"activities": [], "e_tag": "*"}
        changes[page_key]["activities"].append(activity)
        count += 1
    index["count"], index["pages"] = count, -(-count // PAGE_SIZE)
    changes[index_key] = index  # carries the etag read: a concurrent append conflicts
    await storage.write(changes)


async def export_transcript(
    storage: Storage, channel_id: str, conversation_id: str
) -> list[dict[str, Any]]:
    """The conversation's activities, oldest first (a .transcript file's JSON array)."""
    index_key = transcript_key(channel_id, conversation_id, "index")
    index = (await storage.read([index_key])).get(index_key)
    if not index:
        return []
    keys = [
        transcript_key(channel_id, conversation_id, f"{page:06d}") for page in range(index["pages"])
    ]
    pages = await storage.read(keys)
    return [activity for key in keys for activity in pages.get(key, {}).get("activities", [])]

"""Conversations of the local Direct Line: activities in order, watermarks, and open streams.

Everything lives in memory and is bounded: the oldest conversations and, within a conversation,
the oldest activities are dropped. A watermark is the sequence number of the last activity a
client has seen; an updated activity is appended again (same id, new sequence number).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Activity = dict[str, Any]

BOT_ACCOUNT: dict[str, str] = {"id": "botloom", "name": "botloom", "role": "bot"}
STREAMINFO = "streaminfo"
STREAM_IDLE_S = 60.0  # a stream not updated for this long is over (its turn failed)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stream_info(activity: Activity) -> dict[str, Any] | None:
    """The activity's ``streaminfo`` entity, if it has a well-formed one (entities a list, the
    stream id a string: a malformed activity is an ordinary one, never an error)."""
    entities = activity.get("entities")
    for entity in entities if isinstance(entities, list) else []:
        if isinstance(entity, dict) and str(entity.get("type", "")).lower() == STREAMINFO:
            stream_id = entity.get("streamId")
            return entity if stream_id is None or isinstance(stream_id, str) else None
    return None


@dataclass
class Conversation:
    id: str
    token: str
    max_activities: int
    created: float = field(default_factory=time.monotonic)
    users: set[str] = field(default_factory=set)  # users whose arrival the bot was told about
    # stream id -> when it was last updated; a stream silent for STREAM_IDLE_S counts as closed
    open_streams: dict[str, float] = field(default_factory=dict)
    stopped_streams: set[str] = field(default_factory=set)  # the user said "stop" during these
    turn_order: asyncio.Lock = field(default_factory=asyncio.Lock)  # forwards one at a time
    _log: deque[tuple[int, Activity]] = field(init=False)
    _sequence: itertools.count[int] = field(default_factory=itertools.count)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._log = deque(maxlen=self.max_activities)

    def add(self, activity: Activity, *, keep_id: bool = False) -> Activity:
        """Store an activity (a new id unless `keep_id`, a timestamp) and wake the readers."""
        sequence = next(self._sequence)
        if not keep_id or not activity.get("id"):
            activity["id"] = f"{self.id}|{sequence:07d}"
        activity["conversation"] = {"id": self.id}
        activity.setdefault("timestamp", now_iso())
        self._log.append((sequence, activity))
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return activity

    def after(self, watermark: int) -> tuple[list[Activity], int]:
        """The activities after `watermark`, and the new watermark."""
        batch = [(s, a) for s, a in self._log if s > watermark]
        return [a for _, a in batch], (batch[-1][0] if batch else watermark)

    def changed(self) -> asyncio.Event:
        """An event that is set by the next `add` (take it before reading with `after`)."""
        return self._changed

    def track_stream(self, activity: Activity) -> None:
        """Follow a bot's stream: its first activity opens it, the final one closes it and drops
        its interim updates from the history (a client that reads later sees the final only)."""
        info = stream_info(activity)
        if info is None:
            return
        stream_id = info.get("streamId") or activity["id"]
        if info.get("streamType") != "final":
            self.open_streams[stream_id] = time.monotonic()
            return
        self.open_streams.pop(stream_id, None)
        self.stopped_streams.discard(stream_id)
        kept = [
            (sequence, logged)
            for sequence, logged in self._log
            if logged.get("type") != "typing"
            or stream_id not in (logged.get("id"), (stream_info(logged) or {}).get("streamId"))
        ]
        self._log = deque(kept, maxlen=self.max_activities)

    def streaming_now(self) -> set[str]:
        """The streams that are open and were updated recently."""
        now = time.monotonic()
        return {s for s, updated in self.open_streams.items() if now - updated < STREAM_IDLE_S}

    def refuses(self, activity: Activity) -> bool:
        """True for an update to a stream the user stopped (Teams answers those with 403)."""
        info = stream_info(activity)
        return (
            info is not None
            and info.get("streamType") != "final"
            and info.get("streamId") in self.stopped_streams
        )


class ConversationStore:
    """At most `max_conversations`, the least recently created dropped first."""

    def __init__(self, max_conversations: int = 500, max_activities: int = 2000) -> None:
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()
        self._max_conversations = max_conversations
        self._max_activities = max_activities

    def create(self) -> Conversation:
        conversation = Conversation(
            id=secrets.token_hex(12),
            token=secrets.token_urlsafe(24),
            max_activities=self._max_activities,
        )
        self._conversations[conversation.id] = conversation
        while len(self._conversations) > self._max_conversations:
            self._conversations.popitem(last=False)
        return conversation

    def __len__(self) -> int:
        return len(self._conversations)

    def get(self, conversation_id: str) -> Conversation | None:
        return self._conversations.get(conversation_id)

    def by_token(self, token: str) -> Conversation | None:
        return next(
            (c for c in self._conversations.values() if _same_token(c.token, token)),
            None,
        )


def _same_token(expected: str, given: str) -> bool:
    """Constant-time comparison (bytes: a header may carry any character)."""
    return secrets.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))

"""Conversations of the local Direct Line: tokens, activities in order, watermarks, open streams.

Everything lives in memory and is bounded. Each conversation has its tokens (a refresh adds one;
each expires `token_lifetime_s` after it was issued, as `expires_in` says) and its user: one the
server chose and bound into the token (`vouched`), or the first one a client named. A
conversation whose tokens have all expired is gone. A client (the page's origin and the peer
address) has at most `max_per_client` live conversations, and the store `max_conversations`:
beyond either, a new conversation is refused (TooManyConversations), never made room for by
dropping someone else's. Within a conversation the oldest activities are dropped, and only the
latest typing activity of its user is kept. A watermark is the sequence number of the last
activity a client has seen; an updated activity is appended again (same id, new sequence number).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Activity = dict[str, Any]

BOT_ACCOUNT: dict[str, str] = {"id": "botloom", "name": "botloom", "role": "bot"}
STREAMINFO = "streaminfo"
STREAM_IDLE_S = 60.0  # a stream not updated for this long is over (its turn failed)
TOKEN_LIFETIME_S = 3600  # what `expires_in` says
MAX_TOKENS = 4  # live tokens per conversation (refreshes); the oldest goes first


class TooManyConversations(Exception):
    """A new conversation would pass a bound; `retry_after_s`: when one will have expired."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


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
    max_activities: int
    client: str = ""  # who started it (the page's origin and the peer address)
    user_id: str | None = None  # the only sender its tokens admit, once known
    vouched: bool = False  # the server chose `user_id` (not a client)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> when it expires
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

    def expires(self) -> float:
        """When its last token expires (-inf without tokens)."""
        return max(self.tokens.values(), default=float("-inf"))

    def admits(self, token: str, now: float) -> bool | None:
        """True for a live token of this conversation, False for an expired one, None for a
        token that is not its own (constant-time comparisons)."""
        found = None
        for own, expires in self.tokens.items():
            if _same_token(own, token):
                found = expires
        if found is None:
            return None
        return now < found

    def add(self, activity: Activity, *, keep_id: bool = False) -> Activity:
        """Store an activity (a new id unless `keep_id`, a timestamp) and wake the readers."""
        sequence = next(self._sequence)
        if not keep_id or not activity.get("id"):
            activity["id"] = f"{self.id}|{sequence:07d}"
        activity["conversation"] = {"id": self.id}
        activity.setdefault("timestamp", now_iso())
        if _user_typing(activity):
            # A user's typing is only echoed (never forwarded, so no rate limit sees it): only
            # the latest is kept, so typing cannot push the conversation out of its history.
            kept = [(s, logged) for s, logged in self._log if not _user_typing(logged)]
            self._log = deque(kept, maxlen=self.max_activities)
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
    """The live conversations, bounded per client and in all (see the module's docstring)."""

    def __init__(
        self,
        max_conversations: int = 500,
        max_activities: int = 2000,
        *,
        max_per_client: int = 100,
        token_lifetime_s: float = TOKEN_LIFETIME_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()
        self.max_conversations = max_conversations
        self._max_activities = max_activities
        self.max_per_client = max_per_client
        self.token_lifetime_s = token_lifetime_s
        self.clock = clock

    def create(
        self, client: str = "", *, user_id: str | None = None, vouched: bool = False
    ) -> tuple[Conversation, str]:
        """A new conversation and its first token; TooManyConversations past a bound."""
        self._drop_expired()
        mine = [c for c in self._conversations.values() if c.client == client]
        if len(mine) >= self.max_per_client:
            raise TooManyConversations(
                f"too many conversations from this client (at most {self.max_per_client} "
                "at a time); finish or wait for one to expire",
                self._retry_after(mine),
            )
        if len(self._conversations) >= self.max_conversations:
            raise TooManyConversations(
                "too many conversations on this server; try again later",
                self._retry_after(list(self._conversations.values())),
            )
        conversation = Conversation(
            id=secrets.token_hex(12),
            max_activities=self._max_activities,
            client=client,
            user_id=user_id,
            vouched=vouched,
        )
        self._conversations[conversation.id] = conversation
        return conversation, self.issue_token(conversation)

    def issue_token(self, conversation: Conversation) -> str:
        """A new token for `conversation`, live for `token_lifetime_s` (at most MAX_TOKENS are
        kept; the oldest goes). Shaped like a JWT whose payload names the bound user, which is
        where Web Chat reads its user id from."""
        token = _token(conversation.user_id)
        conversation.tokens[token] = self.clock() + self.token_lifetime_s
        while len(conversation.tokens) > MAX_TOKENS:
            conversation.tokens.pop(next(iter(conversation.tokens)))
        return token

    def __len__(self) -> int:
        return len(self._conversations)

    def get(self, conversation_id: str) -> Conversation | None:
        return self._conversations.get(conversation_id)

    def by_token(self, token: str) -> Conversation | None:
        """The conversation a live `token` belongs to."""
        now = self.clock()
        return next((c for c in self._conversations.values() if c.admits(token, now)), None)

    def _drop_expired(self) -> None:
        now = self.clock()
        for conversation_id in [i for i, c in self._conversations.items() if c.expires() <= now]:
            del self._conversations[conversation_id]

    def _retry_after(self, conversations: list[Conversation]) -> int:
        soonest = min((c.expires() for c in conversations), default=self.clock())
        return max(1, math.ceil(soonest - self.clock()))


def _user_typing(activity: Activity) -> bool:
    sender = activity.get("from")
    return (
        activity.get("type") == "typing"
        and isinstance(sender, dict)
        and sender.get("role") == "user"
    )


def _token(user_id: str | None) -> str:
    """`header.payload.random`: the payload says the user (Web Chat decodes it, and uses it as
    its user id); the random part makes the token unguessable. It is checked by comparing the
    whole string with the ones issued, not by a signature."""
    payload = {"user": user_id} if user_id else {}
    parts = [{"alg": "none", "typ": "JWT"}, payload]
    encoded = [_b64(json.dumps(part, separators=(",", ":")).encode()) for part in parts]
    return ".".join([*encoded, secrets.token_urlsafe(24)])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _same_token(expected: str, given: str) -> bool:
    """Constant-time comparison (bytes: a header may carry any character)."""
    return secrets.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))

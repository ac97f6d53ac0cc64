"""Streaming replies on the wire: which channels stream, and the activities a stream is made of.

A stream, as Teams and Web Chat define it (and the Microsoft 365 Agents SDK sends it):

1. an informative update: a ``typing`` activity with the informative text and a ``streaminfo``
   entity ``{streamType: "informative", streamSequence: 1}``; the id the channel returns for it
   becomes the ``streamId`` of every later activity of the stream;
2. streaming updates: ``typing`` activities with the whole text so far and
   ``{streamId, streamType: "streaming", streamSequence: 2, 3, ...}``, no faster than the
   channel's interval (Teams throttles faster senders);
3. the final ``message`` with the complete text and ``{streamId, streamType: "final"}`` (no
   ``streamSequence``: Teams rejects one on the final message, Web Chat ignores it).

The same metadata also goes in ``channelData``, where Web Chat 4.18 looks for it.

Every other channel gets one plain message. Only botbuilder-core is used here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

from botbuilder.schema import Activity, Entity

STREAMINFO = "streaminfo"
TEAMS = "msteams"
DIRECT_LINE_CHANNELS = ("directline", "webchat")


@dataclass(frozen=True)
class StreamOptions:
    """How replies stream. Intervals and limits are in seconds."""

    teams_interval_s: float = 1.0
    directline_interval_s: float = 0.5
    # Teams ends a stream after about two minutes; finish before it does.
    teams_limit_s: float = 110.0
    informative_text: str = "Thinking…"
    # Teams refuses a message over about 28 KB (the whole activity): longer replies are split.
    teams_max_message_bytes: int = 24_000


@dataclass(frozen=True)
class StreamPolicy:
    """How one turn streams: the minimum gap between two sends of the stream, and how long the
    stream may stay open (None: no limit)."""

    interval_s: float
    limit_s: float | None = None
    informative_text: str = StreamOptions.informative_text
    max_message_bytes: int | None = None  # longer replies are split at paragraph boundaries
    # False: the informative update, then only the final message (a reply checked, and perhaps
    # replaced, once it is complete: the final must hold all the stream showed).
    text_updates: bool = True


def stream_policy(
    channel_id: str | None, options: StreamOptions, conversation_type: str | None = None
) -> StreamPolicy | None:
    """The streaming policy for a channel, or None when the channel gets one plain message.

    Teams (one-to-one chats only: a stream in a group chat or channel fails with "Method Not
    Allowed"), Direct Line and Web Chat stream; every other channel (the Emulator included) does
    not.
    """
    channel = (channel_id or "").lower()
    if channel == TEAMS:
        if conversation_type not in (None, "", "personal"):
            return None
        return StreamPolicy(
            options.teams_interval_s,
            options.teams_limit_s,
            options.informative_text,
            options.teams_max_message_bytes,
        )
    if channel in DIRECT_LINE_CHANNELS:
        return StreamPolicy(options.directline_interval_s, None, options.informative_text)
    return None


class StreamInfo(Entity):
    """The ``streaminfo`` entity. botbuilder's ``Entity`` drops properties it does not declare
    when it serialises, so this subclass declares them; properties left None are omitted."""

    _attribute_map: ClassVar[dict[str, dict[str, Any]]] = {
        "type": {"key": "type", "type": "str"},
        "stream_id": {"key": "streamId", "type": "str"},
        "stream_type": {"key": "streamType", "type": "str"},
        "stream_sequence": {"key": "streamSequence", "type": "int"},
    }

    def __init__(
        self,
        *,
        stream_type: str,
        stream_id: str | None = None,
        stream_sequence: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(type=STREAMINFO, **kwargs)
        self.stream_type = stream_type
        self.stream_id = stream_id
        self.stream_sequence = stream_sequence


def informative_update(text: str, sequence: int, stream_id: str | None = None) -> Activity:
    return _stream_activity("typing", text, "informative", sequence, stream_id)


def streaming_update(text: str, sequence: int, stream_id: str | None) -> Activity:
    return _stream_activity("typing", text, "streaming", sequence, stream_id)


def final_message(text: str, stream_id: str | None) -> Activity:
    return _stream_activity("message", text, "final", None, stream_id)


def _stream_activity(
    kind: str, text: str, stream_type: str, sequence: int | None, stream_id: str | None
) -> Activity:
    """The stream's metadata goes in a ``streaminfo`` entity (Teams, the Agents SDK) and, the
    same, in ``channelData`` (Web Chat up to 4.18 reads only that), as Microsoft's Teams AI
    library sends it."""
    info = StreamInfo(stream_type=stream_type, stream_id=stream_id, stream_sequence=sequence)
    channel_data = {
        key: value
        for key, value in (
            ("streamType", stream_type),
            ("streamSequence", sequence),
            ("streamId", stream_id),
        )
        if value is not None
    }
    return Activity(type=kind, text=text, entities=[info], channel_data=channel_data)


def is_stream_activity(activity: Activity) -> bool:
    """True for an activity that belongs to a stream (a ``streaminfo`` entity or ``channelData``
    with a ``streamType``)."""
    if any((getattr(e, "type", None) or "").lower() == STREAMINFO for e in activity.entities or []):
        return True
    channel_data = activity.channel_data
    return isinstance(channel_data, dict) and "streamType" in channel_data


class Refusal(enum.Enum):
    """What a failed send of a stream means (Teams' streaming error codes)."""

    THROTTLED = "throttled"  # 429, 412, 502, 504, no answer: back off, skip updates, go on
    USER_CANCELLED = "user cancelled"  # 403 "... canceled by user": the Stop button
    TIME_LIMIT = "time limit"  # 403 "... exceeded streaming time": Teams closed the stream
    TOO_LARGE = "too large"  # the message-size error: finish the stream, the rest follows
    ENDED = "ended"  # any other 4xx: the channel ended the stream
    FAILED = "failed"  # anything else (a 5xx after retries): a failure, not a user action


BACK_OFF_STATUSES = (429, 412, 502, 504)


@dataclass(frozen=True)
class SendRefusal:
    """Why the channel refused a send of the stream."""

    kind: Refusal
    status: int | None
    detail: str
    retry_after_s: float | None = None

    @property
    def user_stopped(self) -> bool:
        return self.kind is Refusal.USER_CANCELLED

    @property
    def time_limit(self) -> bool:
        return self.kind is Refusal.TIME_LIMIT


def classify_send_error(error: BaseException) -> SendRefusal:
    """Read a failed send. The adapter's error has the HTTP status as ``status`` (botloom's
    sender, whose message carries the connector's error code and message, and ``retry_after_s``)
    or ``response.status_code`` (botbuilder's ``ErrorResponseException``, whose message reads
    ``(Code) message``). 403s are told apart by their message, as Teams documents them."""
    status = getattr(error, "status", None)
    if not isinstance(status, int):
        status = getattr(getattr(error, "response", None), "status_code", None)
    status = status if isinstance(status, int) else None
    retry_after = getattr(error, "retry_after_s", None)
    detail = str(error)
    lowered = detail.lower()
    if "exceeded streaming time" in lowered:
        kind = Refusal.TIME_LIMIT
    elif "cancel" in lowered and "by user" in lowered:
        kind = Refusal.USER_CANCELLED
    elif status == 413 or any(word in lowered for word in ("too large", "size", "too big")):
        kind = Refusal.TOO_LARGE
    elif status in BACK_OFF_STATUSES:
        kind = Refusal.THROTTLED
    elif "contentstreamnotallowed" in lowered or (status is not None and 400 <= status < 500):
        kind = Refusal.ENDED
    elif status is None:  # no answer in time, a connection refused
        kind = Refusal.THROTTLED
    else:
        kind = Refusal.FAILED
    return SendRefusal(
        kind, status, detail, retry_after if isinstance(retry_after, float) else None
    )

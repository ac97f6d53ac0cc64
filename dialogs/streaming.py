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


@dataclass(frozen=True)
class StreamPolicy:
    """How one turn streams: the minimum gap between two sends of the stream, and how long the
    stream may stay open (None: no limit)."""

    interval_s: float
    limit_s: float | None = None
    informative_text: str = StreamOptions.informative_text


def stream_policy(channel_id: str | None, options: StreamOptions) -> StreamPolicy | None:
    """The streaming policy for a channel, or None when the channel gets one plain message.

    Teams, Direct Line and Web Chat stream; every other channel (the Emulator included) does not.
    """
    channel = (channel_id or "").lower()
    if channel == TEAMS:
        return StreamPolicy(
            options.teams_interval_s, options.teams_limit_s, options.informative_text
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


@dataclass(frozen=True)
class SendRefusal:
    """Why the channel refused a send of the stream."""

    user_stopped: bool  # Teams' Stop button (403 ContentStreamNotAllowed) or any other 4xx
    time_limit: bool  # Teams' two-minute limit ("exceeded streaming time")
    status: int | None
    detail: str


def classify_send_error(error: BaseException) -> SendRefusal:
    """Read a failed send. The adapter's error has the HTTP status as ``status`` (botloom's
    sender) or ``response.status_code`` (botbuilder's ``ErrorResponseException``, whose message
    reads ``(Code) message``). A 4xx means the channel refused the stream (Teams answers 403
    ContentStreamNotAllowed after the user pressed Stop); anything else (a connection refused,
    a 5xx after retries) is a failure, not a user action."""
    status = getattr(error, "status", None)
    if not isinstance(status, int):
        status = getattr(getattr(error, "response", None), "status_code", None)
    detail = str(error)
    lowered = detail.lower()
    time_limit = "contentstreamnotallowed" in lowered and "exceeded streaming time" in lowered
    user_stopped = not time_limit and (
        "contentstreamnotallowed" in lowered or (isinstance(status, int) and 400 <= status < 500)
    )
    return SendRefusal(
        user_stopped, time_limit, status if isinstance(status, int) else None, detail
    )

"""Which channels stream, and the streaminfo entity as it goes on the wire."""

from __future__ import annotations

from botbuilder.schema import Activity, Entity

from bot.channels.connector_client import ConnectorError
from bot.channels.streaming import (
    Refusal,
    StreamOptions,
    StreamPolicy,
    classify_send_error,
    final_message,
    informative_update,
    is_stream_activity,
    stream_policy,
    streaming_update,
)


def test_teams_direct_line_and_web_chat_stream_other_channels_do_not() -> None:
    options = StreamOptions(teams_interval_s=1.0, directline_interval_s=0.5, teams_limit_s=110)
    assert stream_policy("msteams", options) == StreamPolicy(1.0, 110, "Thinking…", 24_000)
    assert stream_policy("msteams", options, "personal") == stream_policy("msteams", options)
    for group in ("groupChat", "channel"):
        assert stream_policy("msteams", options, group) is None, "Teams streams only 1:1"
    assert stream_policy("directline", options) == StreamPolicy(0.5, None, "Thinking…")
    assert stream_policy("webchat", options) == StreamPolicy(0.5, None, "Thinking…")
    for channel in ("emulator", "console", "slack", "telegram", "test", "", None):
        assert stream_policy(channel, options) is None, channel


def test_streaminfo_survives_serialisation_unlike_a_plain_entity() -> None:
    assert Activity(entities=[Entity(type="streaminfo", streamId="s")]).serialize()["entities"] == [
        {"type": "streaminfo"}
    ], "botbuilder's Entity drops what it does not declare (the reason for StreamInfo)"
    assert informative_update("Thinking…", 1).serialize() == {
        "type": "typing",
        "text": "Thinking…",
        "entities": [{"type": "streaminfo", "streamType": "informative", "streamSequence": 1}],
        "channelData": {"streamType": "informative", "streamSequence": 1},
    }
    update = streaming_update("Hello wor", 2, "s-1").serialize()
    assert update["entities"] == [
        {"type": "streaminfo", "streamId": "s-1", "streamType": "streaming", "streamSequence": 2}
    ]
    assert update["channelData"] == {
        "streamId": "s-1",
        "streamType": "streaming",
        "streamSequence": 2,
    }
    final = final_message("Hello world", "s-1").serialize()
    assert final["type"] == "message"
    assert final["entities"] == [{"type": "streaminfo", "streamId": "s-1", "streamType": "final"}]
    assert final["channelData"] == {"streamId": "s-1", "streamType": "final"}, (
        "no sequence on the final"
    )


def test_stream_activities_are_recognised() -> None:
    assert is_stream_activity(streaming_update("x", 2, "s"))
    assert is_stream_activity(final_message("x", "s"))
    assert is_stream_activity(Activity(type="typing", channel_data={"streamType": "streaming"}))
    assert not is_stream_activity(Activity(type="typing"))
    assert not is_stream_activity(Activity(type="message", entities=[Entity(type="mention")]))


def test_send_errors_are_told_apart_as_teams_documents_them() -> None:
    def kind(error: BaseException) -> Refusal:
        return classify_send_error(error).kind

    assert (
        kind(
            ConnectorError(
                403, "403 to typing: ContentStreamNotAllowed: Content stream was cancelled by user."
            )
        )
        is Refusal.USER_CANCELLED
    )
    assert kind(Exception("(ContentStreamNotAllowed) Content stream was canceled by user")) is (
        Refusal.USER_CANCELLED
    )
    timed_out = classify_send_error(
        Exception(
            "(ContentStreamNotAllowed) Content stream finished due to exceeded streaming time."
        )
    )
    assert timed_out.time_limit and not timed_out.user_stopped
    assert kind(ConnectorError(403, "403 to typing: BadArgument: Message size too large")) is (
        Refusal.TOO_LARGE
    )
    assert kind(ConnectorError(413, "413 to typing: ")) is Refusal.TOO_LARGE
    assert (
        kind(
            ConnectorError(
                403, "403 to typing: ContentStreamNotAllowed: Content stream is not allowed"
            )
        )
        is Refusal.ENDED
    )
    assert kind(ConnectorError(400, "400 to typing: BadArgument: ...")) is Refusal.ENDED
    throttled = classify_send_error(ConnectorError(429, "429 to typing", retry_after_s=2.0))
    assert throttled.kind is Refusal.THROTTLED and throttled.retry_after_s == 2.0
    for status in (412, 502, 504, None):
        assert kind(ConnectorError(status, "x")) is Refusal.THROTTLED, status
    assert kind(OSError()) is Refusal.THROTTLED, "no answer: back off"
    assert kind(ConnectorError(500, "500 to typing")) is Refusal.FAILED

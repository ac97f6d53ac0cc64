"""Loading .transcript files (Emulator and chatdown output) and writing them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount

from bot.scripted.errors import ScriptError
from bot.scripted.steps import ExpectActivity, ExpectMessage, ExpectTyping, Send
from bot.scripted.transcript import activity_json, load_transcript, write_transcript

USER = {"id": "u1", "name": "Ada", "role": "user"}
BOT = {"id": "b1", "name": "botloom", "role": "bot"}


def transcript(tmp_path: Path, activities: list[dict[str, Any]] | str) -> Path:
    path = tmp_path / "session.transcript"
    text = activities if isinstance(activities, str) else json.dumps(activities, indent=2)
    path.write_text(text, encoding="utf-8")
    return path


def test_user_activities_are_sent_and_bot_activities_expected(tmp_path: Path) -> None:
    path = transcript(
        tmp_path,
        [
            {
                "type": "message",
                "from": USER,
                "recipient": BOT,
                "text": "hi",
                "channelId": "emulator",
            },
            {"type": "typing", "from": BOT, "recipient": USER},
            {"type": "trace", "from": BOT, "name": "BotState", "value": {}},
            {
                "type": "message",
                "from": BOT,
                "text": "Pick one",
                "suggestedActions": {"actions": [{"type": "imBack", "title": "A", "value": "A"}]},
                "attachments": [{"contentType": "image/png", "contentUrl": "https://x.test/a.png"}],
            },
            {"type": "event", "from": BOT, "name": "handoff"},
        ],
    )
    script = load_transcript(path)
    sent, typing, message, event = script.steps
    assert isinstance(sent, Send) and sent.activity.text == "hi" and sent.line == 2
    assert sent.activity.channel_id == "emulator"
    assert isinstance(typing, ExpectTyping)
    assert isinstance(message, ExpectMessage)
    assert (message.text.kind, message.text.written) == ("exact", "Pick one")
    assert message.suggestions == ("A",)
    assert message.attachments is not None
    assert message.attachments[0].content_url == "https://x.test/a.png"
    assert isinstance(event, ExpectActivity) and (event.type, event.name) == ("event", "handoff")


def test_chatdown_output_without_accounts_gets_them_from_the_other_activities(
    tmp_path: Path,
) -> None:
    # chatdown's first activity adds the bot and names neither sender nor recipient
    path = transcript(
        tmp_path,
        [
            {"type": "conversationUpdate", "membersAdded": [BOT], "membersRemoved": []},
            {"type": "message", "from": USER, "recipient": BOT, "text": "hi"},
            {"type": "message", "from": BOT, "recipient": USER, "text": "fake: hi"},
        ],
    )
    update = load_transcript(path).steps[0]
    assert isinstance(update, Send)
    assert update.activity.recipient.id == "b1", "so the bot knows it was added itself"
    assert update.activity.from_property.id == "u1"
    assert update.activity.conversation.id == "session"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('[\n  {"type": "message",\n  "text": "hi"\n', 4, "invalid JSON"),
        ('{"type": "message"}', 1, "a JSON array of activities"),
        ('[\n  {"type": "message", "from": {"role": "user"}},\n  {"text": "no type"}\n]', 3, "#2"),
        ('[\n\n  {"type": "message", "text": "who?"}\n]', 3, "cannot tell who sent it"),
        ('[{"type": "message", "from": {"role": "user"}, "timestamp": "noon"}]', 1, "not a valid"),
    ],
)
def test_a_malformed_transcript_names_file_and_line(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    path = transcript(tmp_path, text)
    with pytest.raises(ScriptError) as caught:
        load_transcript(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert reason in str(caught.value)


def test_written_activities_load_back(tmp_path: Path) -> None:
    user = ChannelAccount(id="u1", name="Ada", role="user")
    bot = ChannelAccount(id="b1", name="botloom", role="bot")
    activities = [
        Activity(type=ActivityTypes.message, text="hi", from_property=user, recipient=bot),
        Activity(type=ActivityTypes.typing, from_property=bot, recipient=user),
        Activity(type=ActivityTypes.message, text="fake: hi", from_property=bot, recipient=user),
    ]
    path = tmp_path / "out.transcript"
    write_transcript(path, [activity_json(a) for a in activities])
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored[0]["from"] == {"id": "u1", "name": "Ada", "role": "user"}
    assert all("timestamp" in a for a in stored)
    steps = load_transcript(path).steps
    assert [type(s) for s in steps] == [Send, ExpectTyping, ExpectMessage]

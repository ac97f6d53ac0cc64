"""Teams-grade AI replies on the wire (a real server, the fake connector on loopback): the AI
label and the feedback buttons, the feedback invoke and its store, group chats and channels."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app import ENDPOINT, create_app
from bot.channels.connector_client import RetryPolicy
from bot.settings import Settings
from bot.storage import create_backend
from bot.turns.feedback_store import export_feedback
from bot.turns.transcripts import export_transcript
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector
from tests.rate_windows import start_of_a_window

Activity = dict[str, Any]
AI_ENTITY = {
    "type": "https://schema.org/Message",
    "@type": "Message",
    "@context": "https://schema.org",
    "@id": "",
    "additionalType": ["AIGeneratedContent"],
}


def stream_type(activity: Activity) -> str | None:
    info = next((e for e in activity.get("entities") or [] if e.get("type") == "streaminfo"), {})
    return info.get("streamType")


def root_entities(activity: Activity) -> list[Activity]:
    return [e for e in activity.get("entities") or [] if e.get("type", "").startswith("https://")]


async def start(settings: Settings, model: Any) -> TestClient:
    app = create_app(settings, model=model)
    app[ENDPOINT].adapter.retry = RetryPolicy(attempts=2, base_delay_s=0.01)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


def fast(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, stream_interval_teams_s=0.1, **changes)


async def test_a_streamed_teams_reply_is_labelled_ai_with_feedback_and_help_is_not(
    settings: Settings, connector: FakeConnector
) -> None:
    client = await start(fast(settings), FakeChatModel(delay=0.02))
    try:
        for count, text in enumerate(("what is a cat?", "/help"), start=1):
            await client.post(
                "/api/messages", json=message(text, service_url=connector.url, channel="msteams")
            )
            await connector.wait_for_messages(count)
    finally:
        await client.close()
    reply, help_reply = connector.messages()
    assert stream_type(reply) == "final" and reply["text"] == "fake: what is a cat?"
    assert root_entities(reply) == [AI_ENTITY], "exactly one schema.org Message root entity"
    assert reply["channelData"]["feedbackLoop"] == {"type": "default"}
    assert reply["channelData"]["feedbackLoopEnabled"] is True
    assert reply["channelData"]["streamType"] == "final", "the stream's metadata stays"
    for update in connector.activities:
        if stream_type(update) in ("informative", "streaming"):
            assert root_entities(update) == [] and "feedbackLoop" not in update["channelData"]
    assert help_reply["text"].startswith("Here is what I understand")
    assert root_entities(help_reply) == [] and "feedbackLoop" not in (
        help_reply.get("channelData") or {}
    )


async def test_feedback_buttons_can_be_turned_off_and_stay_off_other_channels(
    settings: Settings, connector: FakeConnector
) -> None:
    client = await start(fast(settings, feedback_buttons=False), FakeChatModel())
    try:
        for count, channel in enumerate(("msteams", "emulator"), start=1):
            await client.post(
                "/api/messages", json=message("hi", service_url=connector.url, channel=channel)
            )
            await connector.wait_for_messages(count)
    finally:
        await client.close()
    for reply in connector.messages():
        assert root_entities(reply) == [AI_ENTITY], "the AI label stays on"
        assert "feedbackLoop" not in (reply.get("channelData") or {})


def feedback_invoke(service_url: str, reply_id: str, reaction: str, text: str) -> Activity:
    return message(
        None,
        service_url=service_url,
        channel="msteams",
        type="invoke",
        name="message/submitAction",
        replyToId=reply_id,
        value={
            "actionName": "feedback",
            "actionValue": {"reaction": reaction, "feedback": json.dumps({"feedbackText": text})},
        },
    )


def export(settings: Settings, *args: str) -> list[Activity]:
    """`botloom feedback export` in a process of its own, on the same storage."""
    env = {**os.environ, "BOTLOOM_STORAGE": settings.storage}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "feedback", "export", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


async def test_a_feedback_click_is_answered_200_with_an_empty_body_and_exported(
    settings: Settings, connector: FakeConnector
) -> None:
    settings = fast(settings, transcripts="full")
    client = await start(settings, FakeChatModel())
    try:
        await client.post(
            "/api/messages", json=message("tell me", service_url=connector.url, channel="msteams")
        )
        (reply,) = await connector.wait_for_messages(1)
        stream_id = reply["channelData"]["streamId"]
        response = await client.post(
            "/api/messages", json=feedback_invoke(connector.url, stream_id, "dislike", "too short")
        )
        assert response.status == 200
        assert await response.read() == b"", "Teams shows an error for any body"
        other = await client.post(
            "/api/messages",
            json=message(
                None,
                service_url=connector.url,
                channel="msteams",
                type="messageReaction",
                replyToId=stream_id,
                reactionsAdded=[{"type": "like"}],
            ),
        )
        assert other.status in (200, 202)  # its turn ends before the server closes
    finally:
        await client.close()
    entries = export(settings)
    button = next(e for e in entries if e["source"] == "teams-button")
    assert button["reaction"] == "dislike" and button["text"] == "too short"
    assert button["conversation"] == "conv-1" and button["reply_id"] == stream_id
    assert button["prompt"] == "tell me" and button["reply"] == "fake: tell me", "transcripts full"
    reaction = next(e for e in entries if e["source"] == "reaction")
    assert reaction["reaction"] == "like" and reaction["reply_id"] == stream_id
    assert export(settings, "--since", "2999-01-01") == []


async def test_without_full_transcripts_feedback_keeps_no_text_of_the_exchange(
    settings: Settings, connector: FakeConnector
) -> None:
    client = await start(fast(settings), FakeChatModel())
    try:
        response = await client.post(
            "/api/messages", json=feedback_invoke(connector.url, "reply-9", "like", "")
        )
        assert (response.status, await response.read()) == (200, b"")
    finally:
        await client.close()
    (entry,) = export(settings)
    assert entry["reaction"] == "like" and "prompt" not in entry and "reply" not in entry


def group_message(text: str, service_url: str, *, mention: bool, kind: str) -> Activity:
    conversation = {"id": "19:abc@thread.tacv2;messageid=1700", "conversationType": kind}
    extra: dict[str, Any] = {}
    if mention:
        text = f"<at>botloom</at> {text}"
        extra["entities"] = [
            {
                "type": "mention",
                "text": "<at>botloom</at>",
                "mentioned": {"id": "bot-1", "name": "botloom"},
            }
        ]
    activity = message(text, service_url=service_url, channel="msteams", **extra)
    activity["conversation"] = conversation
    return activity


async def test_group_chats_and_channels_answer_only_mentions_in_one_plain_threaded_message(
    settings: Settings, connector: FakeConnector
) -> None:
    model = FakeChatModel(delay=0.05)
    client = await start(fast(settings), model)
    try:
        for kind in ("groupChat", "channel"):
            await client.post(
                "/api/messages",
                json=group_message("no mention", connector.url, mention=False, kind=kind),
            )
            mentioned = group_message("hello all", connector.url, mention=True, kind=kind)
            await client.post("/api/messages", json=mentioned)
            await connector.wait_for(
                lambda a, i=mentioned["id"]: any(m.get("replyToId") == i for m in a), timeout=10
            )
    finally:
        await client.close()
    replies = connector.messages()
    assert [m["text"] for m in replies] == ["fake: hello all", "fake: hello all"]
    assert all(stream_type(a) is None for a in connector.activities), "no stream in groups"
    assert any(a["type"] == "typing" for a in connector.activities), "typing is shown there"
    thread = "19:abc@thread.tacv2;messageid=1700"  # the path as the connector decoded it
    for reply, path in zip(
        replies,
        [
            p
            for p, a in zip(connector.paths, connector.activities, strict=True)
            if a["type"] == "message"
        ],
        strict=True,
    ):
        assert reply["conversation"]["id"] == "19:abc@thread.tacv2;messageid=1700"
        assert path == f"/v3/conversations/{thread}/activities/{reply['replyToId']}"
        assert root_entities(reply) == [AI_ENTITY]
    assert len(model.prompts) == 2, "the unmentioned messages never reached the model"


async def test_a_reply_longer_than_teams_message_size_is_split_at_paragraphs(
    settings: Settings, connector: FakeConnector
) -> None:
    paragraphs = [" ".join(f"p{n}w{i}" for i in range(1500)) for n in range(3)]  # ~10 KB each
    reply = "\n\n".join(paragraphs)
    model = FakeChatModel(reply=lambda _: reply, delay=0, context_window=20_000)
    client = await start(fast(settings, max_new_tokens=10_000, context_tokens=20_000), model)
    try:
        await client.post(
            "/api/messages", json=message("long", service_url=connector.url, channel="msteams")
        )
        await connector.wait_for_messages(2, timeout=30)
    finally:
        await client.close()
    final, rest = connector.messages()
    assert stream_type(final) == "final" and stream_type(rest) is None
    assert final["text"] == "\n\n".join(paragraphs[:2]) and rest["text"] == paragraphs[2]
    assert all(len(m["text"].encode()) <= 24_000 for m in (final, rest))
    assert root_entities(rest) == [AI_ENTITY], "the rest is the model's reply too"


async def test_group_messages_for_others_never_count_towards_the_rate_limit(
    settings: Settings, connector: FakeConnector
) -> None:
    """With resource-specific consent Teams delivers a busy group's every message; a user who
    talks a lot to colleagues must not get "you're sending messages faster than I can answer"."""
    settings = fast(settings, rate_limit_per_minute=1, transcripts="full")
    client = await start(settings, FakeChatModel())
    try:
        await start_of_a_window()
        for index in range(3):
            response = await client.post(
                "/api/messages",
                json=group_message(f"chat {index}", connector.url, mention=False, kind="groupChat"),
            )
            assert response.status == 200, "acknowledged without being stored or run"
        mentioned = group_message("question", connector.url, mention=True, kind="groupChat")
        await client.post("/api/messages", json=mentioned)
        await connector.wait_for_messages(1)
    finally:
        await client.close()
    assert [m["text"] for m in connector.messages()] == ["fake: question"]
    backend = create_backend(settings.storage)
    await backend.open()
    storage = backend.storage
    kept = await export_transcript(storage, "msteams", "19:abc@thread.tacv2;messageid=1700")
    await storage.close()
    assert [a.get("text") for a in kept] == ["<at>botloom</at> question", "fake: question"], (
        "the colleagues' messages are not kept in the transcript"
    )


async def test_a_reaction_listed_many_times_is_one_feedback_entry(
    settings: Settings, connector: FakeConnector
) -> None:
    client = await start(fast(settings), FakeChatModel())
    try:
        reactions = [{"type": "like"}] * 12 + [{"type": "heart"}] * 4
        response = await client.post(
            "/api/messages",
            json=message(
                None,
                service_url=connector.url,
                channel="msteams",
                type="messageReaction",
                replyToId="reply-1",
                reactionsAdded=reactions,
            ),
        )
        assert response.status == 202
    finally:
        await client.close()  # its turn ends before the server closes
    backend = create_backend(settings.storage)
    await backend.open()
    entries = [e async for e in export_feedback(backend.storage)]
    await backend.storage.close()
    assert sorted(e["reaction"] for e in entries) == ["heart", "like"]

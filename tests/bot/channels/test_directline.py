"""botloom's local Direct Line 3.0, driven as Web Chat drives it, with the bot behind it."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.channels.directline import DIRECTLINE
from bot.channels.webchat.page import ChatPage
from bot.settings import Settings
from bot.turns.activity_handler import WELCOME_TEXT
from models.fake import FakeChatModel

Activity = dict[str, Any]
DL = "/v3/directline"


def stream_type(activity: Activity) -> str | None:
    return next(
        (
            e.get("streamType")
            for e in activity.get("entities") or []
            if e.get("type") == "streaminfo"
        ),
        None,
    )


class WebChatClient:
    """What Web Chat (DirectLineJS) does: start a conversation, post, poll or read the websocket."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.conversation: dict[str, Any] = {}
        self.watermark = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.conversation.get('token', 'local')}"}

    async def start(self) -> dict[str, Any]:
        response = await self.client.post(f"{DL}/conversations", headers=self.headers)
        assert response.status == 201
        self.conversation = await response.json()
        return self.conversation

    async def say(self, text: str, user: str = "web-user") -> str:
        activity = {
            "type": "message",
            "text": text,
            "from": {"id": user, "name": "You", "role": "user"},
        }
        url = f"{DL}/conversations/{self.conversation['conversationId']}/activities"
        response = await self.client.post(url, json=activity, headers=self.headers)
        assert response.status == 200
        return (await response.json())["id"]

    async def poll(self) -> list[Activity]:
        conversation = self.conversation["conversationId"]
        url = f"{DL}/conversations/{conversation}/activities?watermark={self.watermark}"
        response = await self.client.get(url, headers=self.headers)
        assert response.status == 200
        body = await response.json()
        self.watermark = body["watermark"]
        return body["activities"]

    async def poll_until(self, done: Any, within_s: float = 10.0) -> list[Activity]:
        seen: list[Activity] = []
        async with asyncio.timeout(within_s):
            while not done(seen):
                seen += await self.poll()
                await asyncio.sleep(0.02)
        return seen


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return dataclasses.replace(settings, stream_interval_directline_s=0.05)


async def serve(settings: Settings, model: FakeChatModel) -> TestClient:
    client = TestClient(TestServer(create_app(settings, model=model), host="127.0.0.1"))
    await client.start_server()
    return client


def bot_auth(client: TestClient) -> dict[str, str]:
    """What the bot's own connector client sends to the connector routes: the process's secret."""
    return {"Authorization": f"Bearer {client.server.app[DIRECTLINE].secret.token}"}


def final_reply(seen: list[Activity]) -> bool:
    return any(a["type"] == "message" and stream_type(a) == "final" for a in seen)


async def test_web_chat_round_trip_over_polling_streams_the_reply(fast: Settings) -> None:
    model = FakeChatModel(delay=0.03)
    client = await serve(fast, model)
    try:
        webchat = WebChatClient(client)
        started = await webchat.start()
        host = f"127.0.0.1:{client.port}"
        assert started["streamUrl"] == (
            f"ws://{host}{DL}/conversations/{started['conversationId']}/stream?t={started['token']}"
        )
        sent_id = await webchat.say("tell me about the weather today please")
        seen = await webchat.poll_until(final_reply)
        webchat.watermark = ""
        history = await webchat.poll()
    finally:
        await client.close()
    echo = seen[0]
    assert (echo["id"], echo["text"], echo["from"]["id"], echo["channelId"]) == (
        sent_id,
        "tell me about the weather today please",
        "web-user",
        "directline",
    )
    bot = [a for a in seen[1:] if a["from"]["role"] == "bot"]
    assert bot[0]["text"] == WELCOME_TEXT, "the bot was told the user joined"
    streamed = [a for a in bot if stream_type(a)]
    assert stream_type(streamed[0]) == "informative"
    assert stream_type(streamed[-1]) == "final"
    assert {stream_type(a) for a in streamed[1:-1]} == {"streaming"}
    stream_id = streamed[0]["id"]
    assert all(
        e["streamId"] == stream_id
        for a in streamed[1:]
        for e in a["entities"]
        if e["type"] == "streaminfo"
    )
    assert streamed[-1]["text"] == "fake: tell me about the weather today please"
    assert len(model.prompts) == 1 and model.prompts[0][-1].content == echo["text"]
    assert [stream_type(a) for a in history if stream_type(a)] == ["final"], (
        "a client reading later gets the final reply, not the interim updates"
    )


async def test_web_chat_websocket_receives_the_stream_as_it_grows(fast: Settings) -> None:
    client = await serve(fast, FakeChatModel(delay=0.03))
    try:
        webchat = WebChatClient(client)
        started = await webchat.start()
        frames: list[dict[str, Any]] = []
        async with client.session.ws_connect(started["streamUrl"]) as socket:
            await webchat.say("one two three four five six seven eight nine ten")
            async with asyncio.timeout(10):
                async for frame in socket:
                    frames.append(frame.json())
                    if final_reply(frame.json()["activities"]):
                        break
    finally:
        await client.close()
    activities = [a for frame in frames for a in frame["activities"]]
    watermarks = [int(frame["watermark"]) for frame in frames]
    assert watermarks == sorted(watermarks)
    texts = [a["text"] for a in activities if stream_type(a) == "streaming"]
    assert len(texts) >= 3 and all(b.startswith(a) for a, b in itertools.pairwise(texts))
    assert activities[-1]["text"] == "fake: one two three four five six seven eight nine ten"


async def test_saying_stop_while_a_reply_streams_stops_the_model(fast: Settings) -> None:
    model = FakeChatModel(reply=lambda _: " ".join(f"w{i}" for i in range(300)), delay=0.02)
    client = await serve(dataclasses.replace(fast, max_new_tokens=400), model)
    try:
        webchat = WebChatClient(client)
        await webchat.start()
        await webchat.say("write a long story")
        await webchat.poll_until(lambda seen: sum(stream_type(a) == "streaming" for a in seen) >= 2)
        await webchat.say("stop")
        seen = await webchat.poll_until(final_reply)
        produced = model.pieces_produced
        await asyncio.sleep(0.3)
    finally:
        await client.close()
    assert model.pieces_produced == produced < 100, "generation stopped"
    final = next(a for a in seen if stream_type(a) == "final")
    assert final["text"].startswith("w0 w1") and len(final["text"].split()) < 100
    assert len(model.prompts) == 1, "'stop' was not sent to the bot as a message"


async def test_conversations_need_their_own_token(fast: Settings) -> None:
    client = await serve(fast, FakeChatModel())
    try:
        first, second = WebChatClient(client), WebChatClient(client)
        await first.start()
        await second.start()
        url = f"{DL}/conversations/{first.conversation['conversationId']}/activities"
        assert (await client.get(url, headers=second.headers)).status == 403
        assert (await client.get(url)).status == 403
        assert (
            await client.get(f"{DL}/conversations/nope/activities", headers=first.headers)
        ).status == 404
        refreshed = await client.post(f"{DL}/tokens/refresh", headers=first.headers)
        assert (await refreshed.json())["conversationId"] == first.conversation["conversationId"]
        reconnect = await client.get(
            f"{DL}/conversations/{first.conversation['conversationId']}?watermark=3",
            headers=first.headers,
        )
        assert (await reconnect.json())["streamUrl"].endswith("&watermark=3")
        json_headers = {**first.headers, "Content-Type": "application/json"}
        bad = await client.post(url, data="not json", headers=json_headers)
        assert bad.status == 400
        not_json = await client.post(url, data="not json", headers=first.headers)  # text/plain
        assert not_json.status == 415
        unknown = await client.post(
            "/v3/conversations/nope/activities", json={"type": "message"}, headers=bot_auth(client)
        )
        assert unknown.status == 404
    finally:
        await client.close()


async def test_bot_updates_replace_an_activity_under_the_same_id(fast: Settings) -> None:
    client = await serve(fast, FakeChatModel())
    try:
        webchat = WebChatClient(client)
        conversation = (await webchat.start())["conversationId"]
        base = f"/v3/conversations/{conversation}/activities"
        auth = bot_auth(client)
        draft = {"type": "message", "text": "draft"}
        sent = await (await client.post(base, json=draft, headers=auth)).json()
        final = {"type": "message", "text": "final"}
        await client.put(f"{base}/{sent['id']}", json=final, headers=auth)
        seen = await webchat.poll()
    finally:
        await client.close()
    assert [(a["id"], a["text"]) for a in seen] == [(sent["id"], "draft"), (sent["id"], "final")]


async def test_with_an_app_id_the_chat_page_explains_and_no_direct_line_is_served(
    settings: Settings,
) -> None:
    secured = dataclasses.replace(
        settings, app_id="00000000-0000-0000-0000-000000000001", app_password="x"
    )
    client = await serve(secured, FakeChatModel())
    try:
        page = await client.get("/chat")
        assert page.status == 404 and "anonymous mode only" in await page.text()
        assert (await client.post(f"{DL}/conversations")).status == 404
    finally:
        await client.close()


async def test_chat_page_without_web_chat_says_how_to_install_it(tmp_path: Path) -> None:
    bundle = tmp_path / "webchat.js"
    app = web.Application()
    page = ChatPage(bundle)
    app.router.add_get("/chat", page.page)
    app.router.add_get("/chat/webchat.js", page.script)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        missing = await client.get("/chat")
        assert missing.status == 503 and "make setup" in await missing.text()
        assert (await client.get("/chat/webchat.js")).status == 404
        bundle.write_text("window.WebChat = {};")
        shown = await client.get("/chat")
        assert shown.status == 200 and '<script src="/chat/webchat.js">' in await shown.text()
        script = await client.get("/chat/webchat.js")
        assert (
            script.content_type == "text/javascript"
            and await script.text() == "window.WebChat = {};"
        )

"""Counting tokens (a chat template plus tokenisation) never runs on the event loop: not in a
turn's prompt building, not in the model server's usage counts (issue 12, item 12)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from models.api import ChatMessage
from models.fake import FakeChatModel
from models.serving.model_server import create_model_server
from tests.activities import message
from tests.connector import FakeConnector


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class LoopRecordingModel(FakeChatModel):
    """The fake model, recording for each count_tokens call whether it ran on the event loop."""

    def __init__(self) -> None:
        super().__init__()
        self.counted_on_loop: list[bool] = []

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        self.counted_on_loop.append(on_event_loop())
        return super().count_tokens(messages)


async def test_a_turn_counts_tokens_off_the_event_loop(
    settings: Settings, connector: FakeConnector
) -> None:
    model = LoopRecordingModel()
    client = TestClient(TestServer(create_app(settings, model=model), host="127.0.0.1"))
    await client.start_server()
    try:
        for text in ("first", "second", "third"):
            activity = message(text, service_url=connector.url)
            assert (await client.post("/api/messages", json=activity)).status == 202
            await connector.wait_for_messages(1 + ("first", "second", "third").index(text))
    finally:
        await client.close()
    assert len(model.counted_on_loop) >= 3
    assert not any(model.counted_on_loop), model.counted_on_loop


async def test_the_model_server_counts_usage_off_the_event_loop() -> None:
    model = LoopRecordingModel()
    client = TestClient(TestServer(create_model_server(model), host="127.0.0.1"))
    await client.start_server()
    try:
        for stream in (False, True):
            body = {
                "messages": [{"role": "user", "content": "hello"}],
                "stream": stream,
                "stream_options": {"include_usage": True},
            }
            response = await client.post("/v1/chat/completions", json=body)
            assert response.status == 200
            await response.read()
    finally:
        await client.close()
    assert len(model.counted_on_loop) >= 6
    assert not any(model.counted_on_loop), model.counted_on_loop

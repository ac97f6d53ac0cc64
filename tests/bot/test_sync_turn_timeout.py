"""A synchronous turn (expectReplies, invokes) that runs past BOTLOOM_TURN_TIMEOUT_S: the channel
gets 504 and a short reason, not a 500; a redelivery gets the same answer, not a second run (the
turn may have replied or acted before its time ran out)."""

from __future__ import annotations

import dataclasses

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector


async def test_an_expect_replies_turn_past_the_timeout_gets_504_and_is_not_run_again(
    settings: Settings, connector: FakeConnector
) -> None:
    slow = dataclasses.replace(settings, turn_timeout_s=0.3, generation_timeout_s=30.0)
    model = FakeChatModel(hang=True)
    app = create_app(slow, model=model)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        activity = message("hello", service_url=connector.url, deliveryMode="expectReplies")
        first = await client.post("/api/messages", json=activity)
        first_text = await first.text()
        retry = await client.post("/api/messages", json=activity)  # the same id, as redelivered
        retry_text = await retry.text()
    finally:
        await client.close()
    assert first.status == 504, first_text
    assert "Retry-After" not in first.headers
    assert first_text == "the turn took longer than 0.3 s"
    assert (retry.status, retry_text) == (504, first_text), "the first delivery's answer"
    assert len(model.prompts) == 1, "not run a second time"

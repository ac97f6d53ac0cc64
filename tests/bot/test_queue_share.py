"""One conversation cannot take the whole turn queue: past its share it gets 429 (and one polite
notice a minute) while other conversations are still admitted."""

from __future__ import annotations

import asyncio
import dataclasses

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector

NOTICE = "You're sending messages faster than I can answer"


async def test_a_conversation_past_its_share_gets_429_and_others_are_still_admitted(
    settings: Settings, connector: FakeConnector
) -> None:
    settings = dataclasses.replace(
        settings, max_queued_turns=10, max_queued_turns_per_conversation=2, typing_interval_s=30
    )
    model = FakeChatModel(delay=0.3)  # "fake: mN", a turn of about a second
    client = TestClient(TestServer(create_app(settings, model=model), host="127.0.0.1"))
    await client.start_server()
    try:

        async def post(text: str, conversation: str) -> tuple[int, str | None]:
            activity = message(text, service_url=connector.url, conversation=conversation)
            response = await client.post("/api/messages", json=activity)
            return response.status, response.headers.get("Retry-After")

        statuses = [await post(f"m{n}", "busy") for n in range(4)]
        assert statuses == [(202, None), (202, None), (429, "5"), (429, "5")]
        for n in range(5):
            assert (await post(f"o{n}", f"other{n}"))[0] == 202, "others are admitted"
        await connector.wait_for(
            lambda _: sum(m["text"].startswith("fake:") for m in connector.messages()) == 7,
            timeout=20,
        )
        await asyncio.sleep(0.3)
    finally:
        await client.close()
    busy = [m["text"] for m in connector.messages("busy")]
    assert sorted(t for t in busy if t.startswith("fake:")) == ["fake: m0", "fake: m1"]
    assert sum(t.startswith(NOTICE) for t in busy) == 1, "one notice, not one per refusal"

"""A hung, crashed or overloaded model: an answer within deadline + 1 s, and the bot goes on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from bot.storage.sqlite import SqliteStorage
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector
from tests.processes import BotProcess
from tests.rate_windows import start_of_a_window

DEADLINE_S = 1.0


@pytest.fixture
def limited_settings(tmp_path: Path) -> Settings:
    return Settings(
        storage=f"sqlite:///{tmp_path}/state.db",
        generation_timeout_s=DEADLINE_S,
        max_pending_requests=2,
        busy_retry_after_s=7,
        typing_interval_s=30,
        rate_limit_per_minute=0,
    )


@pytest.fixture
async def faulty(limited_settings: Settings) -> AsyncIterator[tuple[TestClient, FakeChatModel]]:
    model = FakeChatModel()
    client = TestClient(TestServer(create_app(limited_settings, model=model), host="127.0.0.1"))
    await client.start_server()
    yield client, model
    await client.close()


async def ask(
    client: TestClient, connector: FakeConnector, text: str, conversation: str = "conv-1"
) -> tuple[str, float]:
    count = len(connector.messages(conversation))
    started = time.perf_counter()
    await client.post(
        "/api/messages", json=message(text, service_url=connector.url, conversation=conversation)
    )
    replies = await connector.wait_for_messages(count + 1, conversation=conversation, timeout=10)
    return replies[-1]["text"], time.perf_counter() - started


async def test_hung_model_times_out_and_next_turn_works(
    faulty: tuple[TestClient, FakeChatModel], connector: FakeConnector
) -> None:
    client, model = faulty
    model.hang = True
    text, elapsed = await ask(client, connector, "are you there?")
    assert text == "Sorry, that took me too long. Please try again."
    assert DEADLINE_S <= elapsed < DEADLINE_S + 3  # the model hangs for ever
    model.hang = False
    assert (await ask(client, connector, "and now?"))[0] == "fake: and now?"


async def test_crash_mid_reply_apologises_and_next_turn_works(
    faulty: tuple[TestClient, FakeChatModel], connector: FakeConnector
) -> None:
    client, model = faulty
    model.fail_after, model.error = 1, RuntimeError("CUDA error: device-side assert")
    text, elapsed = await ask(client, connector, "tell me a story")
    assert text == "Sorry, something went wrong while I was answering. Please try again."
    assert elapsed < DEADLINE_S + 3
    model.fail_after = None
    assert (await ask(client, connector, "again"))[0] == "fake: again"


async def test_overload_says_busy_at_once(
    faulty: tuple[TestClient, FakeChatModel], connector: FakeConnector
) -> None:
    client, model = faulty
    model.delay = 0.2  # each reply takes ~0.6 s; only 2 may be admitted at once
    results = await asyncio.gather(
        *(ask(client, connector, "hi", conversation=f"c{i}") for i in range(6))
    )
    busy = [
        elapsed
        for text, elapsed in results
        if text == "I'm busy right now. Please try again in 7 s."
    ]
    answered = [elapsed for text, elapsed in results if text == "fake: hi"]
    assert len(answered) == 2 and len(busy) == 4
    # Said at once: before either admitted reply (each ~0.6 s) is done, however loaded the machine.
    assert max(busy) < min(answered), "busy is said at once, not after waiting"
    model.delay = 0
    assert (await ask(client, connector, "hi", conversation="c0"))[0] == "fake: hi"


async def test_rate_limit_is_polite(tmp_path: Path, connector: FakeConnector) -> None:
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/s.db", rate_limit_per_minute=3, typing_interval_s=30
    )
    client = TestClient(TestServer(create_app(settings, model=FakeChatModel()), host="127.0.0.1"))
    await client.start_server()
    try:
        await start_of_a_window()
        texts = [(await ask(client, connector, f"m{i}"))[0] for i in range(4)]
        other_user = await client.post(
            "/api/messages",
            json=message("me too", service_url=connector.url, user="u2", conversation="c2"),
        )
        assert other_user.status == 202
        other = await connector.wait_for_messages(1, conversation="c2")
    finally:
        await client.close()
    assert texts[:3] == ["fake: m0", "fake: m1", "fake: m2"]
    assert texts[3].startswith("You're sending messages faster than I can answer. Please wait")
    assert other[0]["text"] == "fake: me too"


async def test_connector_429_and_503_are_retried(
    bot_client: TestClient, connector: FakeConnector
) -> None:
    connector.fail_next(429)
    connector.fail_next(503)
    await bot_client.post("/api/messages", json=message("/help", service_url=connector.url))
    replies = await connector.wait_for_messages(1, timeout=10)
    assert replies[0]["text"].startswith("Here is what I understand")


async def test_sigterm_with_ten_turns_in_flight(tmp_path: Path, connector: FakeConnector) -> None:
    """10 of 10 answered or apologised for, readyz 503 while draining, nothing lost from state."""
    env = {
        "BOTLOOM_STORAGE": f"sqlite:///{tmp_path}/state.db",
        "BOTLOOM_MODEL": "fake?delay=0.5",  # "fake: question N" = 3 words: about 1.5 s a reply
        "BOTLOOM_DRAIN_S": "0.5",
        "BOTLOOM_RATE_LIMIT_PER_MINUTE": "0",
        "BOTLOOM_TYPING_INTERVAL_S": "30",
    }
    bot = BotProcess(env, tmp_path / "bot.log")
    try:
        await bot.wait_ready()
        async with aiohttp.ClientSession() as session:
            for i in range(10):
                activity = message(f"question {i}", service_url=connector.url, conversation=f"c{i}")
                async with session.post(f"{bot.url}/api/messages", json=activity) as response:
                    assert response.status == 202
            await asyncio.sleep(0.3)
            bot.terminate()
            await asyncio.sleep(0.2)
            async with session.get(f"{bot.url}/readyz") as response:
                assert response.status == 503
            async with session.post(
                f"{bot.url}/api/messages", json=message("late", service_url=connector.url)
            ) as response:
                assert response.status == 503
        assert await bot.wait_exit(timeout=15) == 0
    finally:
        bot.close()
    replies = {r["conversation"]["id"]: r["text"] for r in connector.messages()}
    assert len(replies) == 10, replies
    apologies = [
        t
        for t in replies.values()
        if t == "Sorry, I'm restarting right now. Please send that again in a minute."
    ]
    assert len(apologies) + sum(t.startswith("fake: question") for t in replies.values()) == 10
    assert apologies, "the short drain window forced some apologies"
    storage = SqliteStorage(tmp_path / "state.db")
    try:
        for i in range(10):
            key = f"emulator/conversations/c{i}"
            history = (await storage.read([key]))[key]["history"]
            assert history[0] == {"role": "user", "content": f"question {i}"}
    finally:
        await storage.close()

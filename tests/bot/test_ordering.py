"""Turns of one conversation run in arrival order, nothing lost; also across two processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from bot.storage.sqlite import SqliteStorage
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector
from tests.processes import BotProcess


async def stored_history(db: Path, conversation: str, channel: str = "emulator") -> list[str]:
    storage = SqliteStorage(db)
    try:
        key = f"{channel}/conversations/{conversation}"
        item = (await storage.read([key])).get(key, {})
        return [m["content"] for m in item.get("history", []) if m["role"] == "user"]
    finally:
        await storage.close()


async def test_twenty_messages_in_flight_are_answered_in_order(
    tmp_path: Path, connector: FakeConnector
) -> None:
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/state.db", rate_limit_per_minute=0, typing_interval_s=30
    )
    client = TestClient(
        TestServer(create_app(settings, model=FakeChatModel(delay=0.005)), host="127.0.0.1")
    )
    await client.start_server()
    try:
        texts = [f"message {i}" for i in range(20)]
        for text in texts:  # each POST is acknowledged at once; the turns overlap
            response = await client.post(
                "/api/messages", json=message(text, service_url=connector.url)
            )
            assert response.status == 202
        replies = await connector.wait_for_messages(20, timeout=30)
    finally:
        await client.close()
    assert [r["text"] for r in replies] == [f"fake: {t}" for t in texts]
    assert await stored_history(tmp_path / "state.db", "conv-1") == texts


async def test_duplicate_delivery_is_answered_once(
    bot_client: TestClient, connector: FakeConnector
) -> None:
    activity = message("only once", service_url=connector.url)
    first = await bot_client.post("/api/messages", json=activity)
    retry = await bot_client.post("/api/messages", json=activity)
    assert (first.status, retry.status) == (202, 200)
    await connector.wait_for_messages(1)
    await asyncio.sleep(0.3)
    assert len(connector.messages()) == 1


async def test_two_processes_sharing_one_sqlite_file_lose_nothing(
    tmp_path: Path, connector: FakeConnector
) -> None:
    env = {
        "BOTLOOM_STORAGE": f"sqlite:///{tmp_path}/shared.db",
        "BOTLOOM_MODEL": "fake?delay=0.01",
        "BOTLOOM_RATE_LIMIT_PER_MINUTE": "0",
        "BOTLOOM_LOG_LEVEL": "WARNING",
    }
    bots = [BotProcess(env, tmp_path / f"bot{i}.log") for i in range(2)]
    try:
        await asyncio.gather(*(bot.wait_ready() for bot in bots))
        texts = [f"message {i}" for i in range(20)]
        async with aiohttp.ClientSession() as session:

            async def send(i: int) -> int:
                bot = bots[i % 2]
                activity = message(texts[i], service_url=connector.url, conversation="shared")
                async with session.post(f"{bot.url}/api/messages", json=activity) as response:
                    return response.status

            statuses = await asyncio.gather(*(send(i) for i in range(20)))
        assert statuses == [202] * 20
        replies = await connector.wait_for_messages(20, timeout=60)
    finally:
        for bot in bots:
            bot.terminate()
        for bot in bots:
            await bot.wait_exit()
            bot.close()
    assert sorted(r["text"] for r in replies) == sorted(f"fake: {t}" for t in texts)
    history = await stored_history(tmp_path / "shared.db", "shared")
    assert sorted(history) == sorted(texts), "every message is in the stored history"
    assert len(history) == 20

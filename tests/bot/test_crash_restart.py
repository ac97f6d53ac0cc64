"""A laptop bot on SQLite killed mid-turn (kill -9): after a restart, what it had acknowledged is
answered, in order, and the history holds every turn once."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.storage.sqlite import SqliteStorage
from tests.activities import message
from tests.connector import FakeConnector
from tests.processes import BotProcess

CONVERSATION = "crash-1"


async def test_messages_acknowledged_before_a_crash_are_answered_after_the_restart(
    tmp_path: Path, connector: FakeConnector
) -> None:
    env = {
        "BOTLOOM_STORAGE": f"sqlite:///{tmp_path / 'state.db'}",
        "BOTLOOM_MODEL": "fake?delay=0.2",  # 0.2 s a word: the first turn runs for seconds
        "BOTLOOM_LOCK_LEASE_S": "2",
        "BOTLOOM_RATE_LIMIT_PER_MINUTE": "0",
        "BOTLOOM_TYPING_INTERVAL_S": "30",
    }
    texts = ["a long first message to answer slowly", "second", "third"]
    bot = BotProcess(env, tmp_path / "first.log")
    try:
        await bot.wait_ready()
        async with aiohttp.ClientSession() as session:
            for text in texts:
                activity = message(text, service_url=connector.url, conversation=CONVERSATION)
                async with session.post(f"{bot.url}/api/messages", json=activity) as response:
                    assert response.status == 202
        await connector.wait_for(lambda sent: len(sent) >= 1)  # typing: the first turn runs
        bot.kill()
        await bot.wait_exit()
    finally:
        bot.close()
    assert connector.messages() == [], "answered before the crash; nothing to recover"

    restarted = BotProcess(env, tmp_path / "restarted.log")
    try:
        await restarted.wait_ready()
        replies = await connector.wait_for_messages(3, timeout=30)
    finally:
        restarted.terminate()
        await restarted.wait_exit()
        restarted.close()
    assert [r["text"] for r in replies] == [f"fake: {text}" for text in texts]

    storage = SqliteStorage(tmp_path / "state.db")
    try:
        key = f"emulator/conversations/{CONVERSATION}"
        state = (await storage.read([key]))[key]
    finally:
        await storage.close()
    history = [m["content"] for m in state["history"]]
    assert history == [part for text in texts for part in (text, f"fake: {text}")]

"""Proactive messages (`botloom notify`), prompt starters in the welcome, and /feedback ratings in
the feedback store. A real server, the fake connector on loopback, a real SQLite file."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from botbuilder.core import MemoryStorage, TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity

from bot.app import create_app
from bot.proactive import ConversationReferences, UnknownConversation, notify
from bot.settings import Settings, SettingsError
from bot.storage import create_backend
from bot.turns.feedback_store import export_feedback
from bot.turns.prompt_starters import parse_prompt_starters
from models.fake import FakeChatModel
from tests.activities import conversation_update, message
from tests.connector import FakeConnector

STARTERS = "Explain|Explain how a transformer works;Haiku|Write a haiku about the sea;" + ";".join(
    f"S{i}|Starter number {i}" for i in range(3, 9)
)


async def start(settings: Settings) -> TestClient:
    client = TestClient(TestServer(create_app(settings, model=FakeChatModel()), host="127.0.0.1"))
    await client.start_server()
    return client


async def test_notify_sends_into_a_conversation_the_bot_has_seen(
    settings: Settings, connector: FakeConnector
) -> None:
    client = await start(settings)
    try:
        await client.post(
            "/api/messages", json=message("hi", service_url=connector.url, conversation="c-7")
        )
        await connector.wait_for_messages(1)
    finally:
        await client.close()
    backend = create_backend(settings.storage)
    await backend.open()
    storage = backend.storage
    await notify(settings, "c-7", "The report is ready.", storage=storage)
    with pytest.raises(UnknownConversation):
        await notify(settings, "never-seen", "hello", storage=storage)
    sent = connector.messages()[-1]
    assert sent["text"] == "The report is ready."
    assert sent["conversation"]["id"] == "c-7" and sent["recipient"]["id"] == "user-1"
    assert connector.paths[-1] == "/v3/conversations/c-7/activities"
    await storage.close()


async def botloom(settings: Settings, *args: str) -> tuple[int, str]:
    """The command in a process of its own (the fake connector keeps answering meanwhile)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        env={**os.environ, "BOTLOOM_STORAGE": settings.storage},
        cwd=Path(__file__).parents[2],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, stderr.decode()


async def test_the_notify_command_delivers_and_names_an_unknown_conversation(
    settings: Settings, connector: FakeConnector
) -> None:
    client = await start(settings)
    try:
        await client.post(
            "/api/messages", json=message("hi", service_url=connector.url, conversation="c-8")
        )
        await connector.wait_for_messages(1)
    finally:
        await client.close()
    status, stderr = await botloom(settings, "notify", "--conversation", "c-8", "At 6 pm.")
    assert status == 0, stderr
    assert connector.messages()[-1]["text"] == "At 6 pm."
    status, stderr = await botloom(settings, "notify", "--conversation", "nope", "x")
    assert status == 2 and "no conversation nope" in stderr


@pytest.mark.parametrize(("channel", "shown"), [("webchat", 8), ("emulator", 8), ("msteams", 3)])
async def test_the_welcome_carries_the_prompt_starters_as_suggested_actions(
    settings: Settings, connector: FakeConnector, channel: str, shown: int
) -> None:
    client = await start(dataclasses.replace(settings, prompt_starters=STARTERS))
    try:
        await client.post(
            "/api/messages",
            json=conversation_update(["user-1"], service_url=connector.url, channel=channel),
        )
        (welcome,) = await connector.wait_for_messages(1)
    finally:
        await client.close()
    actions = welcome["suggestedActions"]["actions"]
    assert len(actions) == shown
    assert actions[0] == {
        "type": "imBack",
        "title": "Explain",
        "value": "Explain how a transformer works",
    }


def test_prompt_starters_are_checked_when_the_bot_starts() -> None:
    assert [s.text for s in parse_prompt_starters("Hi\nA|b; ;")] == ["Hi", "b"]
    with pytest.raises(SettingsError, match="at most 10"):
        parse_prompt_starters(";".join(f"t{i}|x" for i in range(11)))
    with pytest.raises(SettingsError, match="128"):
        parse_prompt_starters("long|" + "x" * 129)


async def test_feedback_ratings_go_to_the_same_store(
    settings: Settings, connector: FakeConnector
) -> None:
    client = await start(settings)
    try:
        for count, text in enumerate(("/feedback", "Great", "lovely answers", "yes"), start=1):
            await client.post("/api/messages", json=message(text, service_url=connector.url))
            await connector.wait_for_messages(count)
    finally:
        await client.close()
    backend = create_backend(settings.storage)
    await backend.open()
    storage = backend.storage
    entries = [entry async for entry in export_feedback(storage)]
    await storage.close()
    assert [(e["source"], e["reaction"], e["text"]) for e in entries] == [
        ("/feedback", "great", "lovely answers")
    ]


class CountingStorage(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.reads = self.writes = 0

    async def read(self, keys: list[str]) -> dict[str, Any]:
        self.reads += 1
        return await super().read(keys)

    async def write(self, changes: dict[str, Any]) -> None:
        self.writes += 1
        await super().write(changes)


async def test_conversation_references_remember_only_the_most_recently_seen() -> None:
    storage = CountingStorage()
    references = ConversationReferences(storage, max_known=3)

    def turn(conversation: str) -> TurnContext:
        activity = Activity().deserialize(
            message("hi", service_url="https://smba.example/", conversation=conversation)
        )
        return TurnContext(TestAdapter(), activity)

    for n in range(5):
        await references.remember(turn(f"c{n}"))
    assert references.remembered == 3, "bounded: the least recently seen are forgotten"
    assert storage.writes == 5
    for n in range(5):
        assert (await references.get(f"c{n}")).conversation.id == f"c{n}", "all stored"
    reads = storage.reads
    await references.remember(turn("c4"))  # remembered: no read, no write
    assert (storage.reads, storage.writes) == (reads, 5)
    await references.remember(turn("c0"))  # forgotten: read once, not written again
    assert (storage.reads, storage.writes) == (reads + 1, 5)
    assert references.remembered == 3

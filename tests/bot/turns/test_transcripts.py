"""Transcripts: every turn's activities in the bot's own storage, full or without personal data."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from botbuilder.core import MemoryStorage, Storage, TurnContext

from bot.app import create_app
from bot.settings import Settings, SettingsError
from bot.storage.sqlite import SqliteStorage
from bot.turns.transcripts import PAGE_SIZE, append_activities, export_transcript, transcript_key
from models.fake import FakeChatModel
from tests.activities import message
from tests.bot.storage.test_storage import STORAGES, Opener
from tests.connector import FakeConnector


@pytest.fixture(params=sorted(STORAGES))
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    opener: Opener
    async with STORAGES[request.param](tmp_path) as opener:
        yield opener()


async def chat(
    settings: Settings, connector: FakeConnector, storage: Storage, texts: list[str]
) -> None:
    client = TestClient(
        TestServer(create_app(settings, model=FakeChatModel(), storage=storage), host="127.0.0.1")
    )
    await client.start_server()
    try:
        for count, text in enumerate(texts, start=1):
            await client.post(
                "/api/messages", json=message(text, service_url=connector.url, conversation="c 1")
            )
            await connector.wait_for_messages(count)
    finally:
        await client.close()


def transcript_settings(tmp_path: Path, mode: str) -> Settings:
    return Settings(
        storage=f"sqlite:///{tmp_path}/state.db", transcripts=mode, typing_interval_s=0.01
    )


async def test_full_transcript_holds_every_activity_in_order(
    tmp_path: Path, connector: FakeConnector
) -> None:
    storage = SqliteStorage(tmp_path / "state.db")
    await chat(transcript_settings(tmp_path, "full"), connector, storage, ["hello", "how are you?"])
    storage = SqliteStorage(tmp_path / "state.db")  # the app closed the first one
    try:
        activities = await export_transcript(storage, "emulator", "c 1")
    finally:
        await storage.close()
    assert [(a["type"], a["from"]["role"], a["text"]) for a in activities] == [
        ("message", "user", "hello"),
        ("message", "bot", "fake: hello"),
        ("message", "user", "how are you?"),
        ("message", "bot", "fake: how are you?"),
    ]
    assert activities[0]["from"] == {"id": "user-1", "name": "User", "role": "user"}
    assert all(a["timestamp"] and a["conversation"]["id"] == "c 1" for a in activities)
    json.dumps(activities)  # a .transcript file is a JSON array of these


async def test_redacted_transcript_keeps_no_personal_data(
    tmp_path: Path, connector: FakeConnector
) -> None:
    storage = SqliteStorage(tmp_path / "state.db")
    await chat(
        transcript_settings(tmp_path, "redacted"), connector, storage, ["my name is Ada Lovelace"]
    )
    storage = SqliteStorage(tmp_path / "state.db")
    try:
        activities = await export_transcript(storage, "emulator", "c 1")
    finally:
        await storage.close()
    assert [(a["type"], a["from"], a["text"]) for a in activities] == [
        ("message", {"role": "user"}, "[23 characters]"),
        ("message", {"role": "bot"}, "[49 characters]"),  # "Got it, I'll remember: …"
    ]
    dumped = json.dumps(activities)
    for personal in ("Ada", "Lovelace", "user-1", '"User"', "bot-1", "serviceUrl"):
        assert personal not in dumped


async def test_transcripts_are_off_by_default(tmp_path: Path, connector: FakeConnector) -> None:
    storage = SqliteStorage(tmp_path / "state.db")
    await chat(transcript_settings(tmp_path, "off"), connector, storage, ["hello"])
    storage = SqliteStorage(tmp_path / "state.db")
    try:
        assert await export_transcript(storage, "emulator", "c 1") == []
    finally:
        await storage.close()
    assert Settings().transcripts == "off"


async def test_a_failing_transcript_write_does_not_fail_the_turn(
    tmp_path: Path, connector: FakeConnector
) -> None:
    class NoTranscripts(MemoryStorage):
        async def write(self, changes: dict[str, Any]) -> None:
            if any(key.startswith("transcripts/") for key in changes):
                raise OSError("disk full")
            await super().write(changes)

    await chat(transcript_settings(tmp_path, "full"), connector, NoTranscripts(), ["hello"])
    assert [m["text"] for m in connector.messages()] == ["fake: hello"]


def test_an_unknown_mode_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match="BOTLOOM_TRANSCRIPTS must be one of off, redacted, full"
    ):
        create_app(transcript_settings(tmp_path, "yes"), model=FakeChatModel())
    assert (
        Settings.from_env({"BOTLOOM_TRANSCRIPTS": "redacted"}, env_file=None).transcripts
        == "redacted"
    )


async def test_long_transcripts_are_paged_in_every_storage(storage: Storage) -> None:
    batches = [[{"type": "message", "text": f"{b}.{i}"} for i in range(b + 1)] for b in range(15)]
    for batch in batches:  # 120 activities in batches of 1 to 15
        await append_activities(storage, "msteams", "19:x", batch)
    exported = await export_transcript(storage, "msteams", "19:x")
    assert [a["text"] for a in exported] == [a["text"] for batch in batches for a in batch]
    index = (await storage.read([transcript_key("msteams", "19:x", "index")]))[
        transcript_key("msteams", "19:x", "index")
    ]
    assert (index["count"], index["pages"]) == (120, -(-120 // PAGE_SIZE))


async def test_a_one_moment_notice_does_not_record_the_users_message_again() -> None:
    """The notice runs in a turn of its own over the waiting message (issue 12, item 11): the
    transcript gets the notice, and the message once, from its real turn."""
    from botbuilder.core.adapters import TestAdapter
    from botbuilder.schema import Activity, ActivityTypes

    from bot.turns.inbox_entries import ONE_MOMENT, tell_one_moment
    from bot.turns.transcripts import TranscriptMiddleware, export_transcript

    storage = MemoryStorage()
    adapter = TestAdapter()
    adapter.use(TranscriptMiddleware(storage, "full"))

    async def answer(turn_context: TurnContext) -> None:
        await turn_context.send_activity("the answer")

    waiting = Activity(type=ActivityTypes.message, text="second question")
    await adapter.process_activity(waiting, tell_one_moment)
    await adapter.process_activity(waiting, answer)
    conversation = adapter.template.conversation.id
    recorded = await export_transcript(storage, adapter.template.channel_id, conversation)
    texts = [a.get("text") for a in recorded]
    assert texts == [ONE_MOMENT, "second question", "the answer"]

"""User memory and the rate limit key on the identity a channel vouches for, decided at the
endpoint: Teams' `aadObjectId` on a validated channel token keeps a user's memory across
conversations; a `from.id` that the client chose (the Emulator, Teams' shape in anonymous mode)
reaches only its own conversation's memory and is counted by conversation."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from dialogs.memory.commands import FORGOT_ALL, NOTHING_KEPT
from models.fake import FakeChatModel
from tests.activities import message
from tests.bot.http.test_auth import FakeKeyServer, SigningKey, token
from tests.bot.test_auth_emulator import key_server, secured_bot  # noqa: F401 (fixture)
from tests.connector import FakeConnector
from tests.rate_windows import start_of_a_window


@pytest.fixture
async def anonymous(settings: Settings) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(create_app(settings, model=FakeChatModel()), host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def ask(
    client: TestClient,
    connector: FakeConnector,
    text: str,
    *,
    conversation: str,
    headers: dict[str, str] | None = None,
    aad: str | None = None,
    **extra: Any,
) -> str:
    """Send `text` (from Entra user `aad`, if given) and return the bot's next message in that
    conversation."""
    before = len(connector.messages(conversation))
    activity = message(text, service_url=connector.url, conversation=conversation, **extra)
    if aad is not None:
        activity["from"]["aadObjectId"] = aad
    response = await client.post("/api/messages", json=activity, headers=headers or {})
    assert response.status == 202, await response.text()
    replies = await connector.wait_for_messages(before + 1, conversation=conversation)
    return str(replies[before]["text"])


async def test_a_spoofed_emulator_user_cannot_read_delete_or_plant_facts(
    anonymous: TestClient, connector: FakeConnector
) -> None:
    alice = {"conversation": "alice-chat", "user": "alice"}
    spoofer = {"conversation": "mallory-chat", "user": "alice"}  # Alice's id, another chat
    await ask(anonymous, connector, "My name is Alice and I live in Oslo.", **alice)
    assert await ask(anonymous, connector, "/memory", **spoofer) == NOTHING_KEPT
    await ask(anonymous, connector, "/remember my manager is Mallory", **spoofer)
    assert await ask(anonymous, connector, "/forget", **spoofer) == FORGOT_ALL
    kept = await ask(anonymous, connector, "/memory", **alice)
    assert "Your name is Alice." in kept and "Oslo" in kept, "nothing was deleted"
    assert "Mallory" not in kept, "nothing was planted"


async def test_teams_shapes_in_anonymous_mode_vouch_for_no_one(
    anonymous: TestClient, connector: FakeConnector
) -> None:
    teams: dict[str, Any] = {"channel": "msteams", "user": "29:a", "aad": "aad-1"}
    await ask(anonymous, connector, "/remember my pin is 1234", conversation="a", **teams)
    assert await ask(anonymous, connector, "/memory", conversation="b", **teams) == NOTHING_KEPT


async def test_teams_keeps_memory_across_conversations_on_a_validated_token(
    tmp_path: Path,
    key_server: FakeKeyServer,  # noqa: F811
    connector: FakeConnector,
) -> None:
    client = await secured_bot(tmp_path, key_server)
    key: SigningKey = key_server.keys[0]
    headers = {"Authorization": f"Bearer {token(key, connector.url)}"}
    sam: dict[str, Any] = {"channel": "msteams", "headers": headers, "aad": "aad-1"}
    try:
        await ask(client, connector, "My name is Sam.", conversation="one", user="29:a", **sam)
        shown = await ask(client, connector, "/memory", conversation="two", user="29:b", **sam)
        sam["aad"] = "aad-2"
        other = await ask(client, connector, "/memory", conversation="one", user="29:a", **sam)
    finally:
        await client.close()
    assert "Your name is Sam." in shown, "the same Entra user in another conversation"
    assert other == NOTHING_KEPT, "another Entra user with the same from.id"


async def test_rotating_the_from_id_does_not_escape_the_rate_limit(
    settings: Settings, connector: FakeConnector
) -> None:
    limited = dataclasses.replace(settings, rate_limit_per_minute=2)
    client = TestClient(TestServer(create_app(limited, model=FakeChatModel()), host="127.0.0.1"))
    await client.start_server()
    try:
        await start_of_a_window()
        statuses = []
        for n in range(4):
            activity = message(f"m{n}", service_url=connector.url, conversation="c", user=f"u{n}")
            statuses.append((await client.post("/api/messages", json=activity)).status)
        other = message("hi", service_url=connector.url, conversation="other", user="u0")
        other_status = (await client.post("/api/messages", json=other)).status
    finally:
        await client.close()
    assert statuses == [202, 202, 429, 429]
    assert other_status == 202, "another conversation is counted on its own"


async def test_a_teams_user_is_counted_across_conversations(
    tmp_path: Path,
    key_server: FakeKeyServer,  # noqa: F811
    connector: FakeConnector,
) -> None:
    client = await secured_bot(tmp_path, key_server, rate_limit_per_minute=2)
    headers = {"Authorization": f"Bearer {token(key_server.keys[0], connector.url)}"}
    statuses = []
    try:
        await start_of_a_window()
        for n in range(3):
            activity = message(
                f"m{n}", service_url=connector.url, conversation=f"c{n}", user=f"29:{n}"
            )
            activity["channelId"] = "msteams"
            activity["from"]["aadObjectId"] = "aad-1"
            statuses.append(
                (await client.post("/api/messages", json=activity, headers=headers)).status
            )
    finally:
        await client.close()
    assert statuses == [202, 202, 429], "one Entra user, whatever the chat or from.id"

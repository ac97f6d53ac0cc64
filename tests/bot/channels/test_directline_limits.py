"""The local Direct Line's bounds and trust: conversations bounded per client (429, nobody else's
conversation dropped), tokens that expire as `expires_in` says and are refreshed, connector routes
that answer only this process's bot (its secret, not the peer address), and users bound into
tokens, so that memory follows a user the server chose and no one else."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import RUNTIME, create_app
from bot.channels.directline import DIRECTLINE, LocalDirectLine
from bot.security.local_secret import LOCAL_CHANNEL_HEADER, LocalSecret
from bot.settings import Settings
from bot.turns.activity_handler import WELCOME_TEXT
from dialogs.memory.commands import NOTHING_KEPT
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector

DL = "/v3/directline"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    started = TestClient(TestServer(create_app(settings, model=FakeChatModel()), host="127.0.0.1"))
    await started.start_server()
    yield started
    await started.close()


def service(client: TestClient) -> LocalDirectLine:
    return client.server.app[DIRECTLINE]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start(client: TestClient, **headers: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        f"{DL}/conversations", headers={"Authorization": "Bearer x", **headers}
    )
    body = await response.json() if response.status == 201 else {"text": await response.text()}
    return response.status, {**body, "retry_after": response.headers.get("Retry-After")}


async def generate(client: TestClient) -> dict[str, Any]:
    response = await client.post(f"{DL}/tokens/generate", json={})
    assert response.status == 200, await response.text()
    return await response.json()


def activities_url(conversation: dict[str, Any]) -> str:
    return f"{DL}/conversations/{conversation['conversationId']}/activities"


async def poll(client: TestClient, conversation: dict[str, Any], token: str | None = None) -> int:
    url = activities_url(conversation)
    return (await client.get(url, headers=bearer(token or conversation["token"]))).status


def token_user(token: str) -> str | None:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("user")


async def bot_texts(client: TestClient, conversation: dict[str, Any], count: int) -> list[str]:
    """The bot's message texts in the conversation, once there are `count` of them."""
    texts: list[str] = []
    for _ in range(200):
        response = await client.get(
            activities_url(conversation), headers=bearer(conversation["token"])
        )
        activities = (await response.json())["activities"]
        texts = [
            a.get("text", "")
            for a in activities
            if a["type"] == "message" and a["from"].get("role") == "bot"
        ]
        if len(texts) >= count:
            return texts
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {texts}")


async def say(client: TestClient, conversation: dict[str, Any], text: str, user: str) -> int:
    activity = {"type": "message", "text": text, "from": {"id": user}}
    url = activities_url(conversation)
    return (await client.post(url, json=activity, headers=bearer(conversation["token"]))).status


# Conversations per client ----------------------------------------------------------------------


async def test_a_client_past_its_conversations_gets_429_and_nobody_loses_theirs(
    client: TestClient,
) -> None:
    store = service(client).store
    store.max_per_client, store.max_conversations = 2, 3
    own = {"Origin": f"http://127.0.0.1:{client.server.port}"}
    first = [await start(client, **own) for _ in range(2)]
    status, refused = await start(client, **own)
    assert status == 429 and "too many conversations from this client" in refused["text"]
    assert 1 <= int(refused["retry_after"]) <= 3600
    other_status, other = await start(client)  # another client: no Origin (curl, the Emulator)
    assert other_status == 201
    full_status, full = await start(client)
    assert full_status == 429 and "on this server" in full["text"]
    assert [await poll(client, body) for _, body in [*first, (0, other)]] == [200, 200, 200]
    assert len(store) == 3, "nothing was evicted"


async def test_expired_conversations_make_room_again(client: TestClient) -> None:
    store = service(client).store
    store.clock = clock = Clock()
    store.max_per_client = 1
    assert (await start(client))[0] == 201
    assert (await start(client))[0] == 429
    clock.now += store.token_lifetime_s
    assert (await start(client))[0] == 201


# Token expiry and refresh ----------------------------------------------------------------------


async def test_tokens_expire_as_advertised_and_a_refresh_extends(client: TestClient) -> None:
    store = service(client).store
    store.clock = clock = Clock()
    status, conversation = await start(client)
    assert status == 201 and conversation["expires_in"] == 3600
    clock.now += 3000
    refreshed = await client.post(f"{DL}/tokens/refresh", headers=bearer(conversation["token"]))
    assert refreshed.status == 200
    new = await refreshed.json()
    assert new["conversationId"] == conversation["conversationId"]
    assert new["token"] != conversation["token"] and new["expires_in"] == 3600
    clock.now += 601  # past the first token's hour
    expired = await client.get(activities_url(conversation), headers=bearer(conversation["token"]))
    assert (expired.status, await expired.text()) == (403, "token expired")
    again = await client.post(f"{DL}/tokens/refresh", headers=bearer(conversation["token"]))
    assert again.status == 403, "an expired token cannot be refreshed"
    assert await poll(client, conversation, new["token"]) == 200
    reconnect = f"{DL}/conversations/{conversation['conversationId']}"
    assert (await client.get(reconnect, headers=bearer(conversation["token"]))).status == 403
    clock.now += 3000
    assert await poll(client, conversation, new["token"]) == 403


async def test_an_expired_token_opens_no_stream(client: TestClient) -> None:
    store = service(client).store
    store.clock = clock = Clock()
    _, conversation = await start(client)
    clock.now += 3600
    url = f"{DL}/conversations/{conversation['conversationId']}/stream?t={conversation['token']}"
    assert (await client.get(url)).status == 403


# The connector routes ----------------------------------------------------------------------------


async def test_connector_routes_need_the_process_secret_not_a_loopback_address(
    client: TestClient,
) -> None:
    _, conversation = await start(client)
    url = f"/v3/conversations/{conversation['conversationId']}/activities"
    reply = {"type": "message", "text": "forged"}
    for headers in ({}, bearer("guess"), bearer(conversation["token"])):
        assert (await client.post(url, json=reply, headers=headers)).status == 401
        assert (await client.put(f"{url}/x", json=reply, headers=headers)).status == 401
    secret = bearer(service(client).secret.token)
    assert (await client.post(url, json=reply, headers=secret)).status == 200


async def test_the_secret_goes_to_the_local_direct_line_only(
    client: TestClient, connector: FakeConnector
) -> None:
    conversation = await generate(client)
    assert await say(client, conversation, "hello", token_user(conversation["token"]) or "") == 200
    await bot_texts(client, conversation, 2)  # the welcome and the reply: the secret got there
    emulator = message("hi", service_url=connector.url)  # another loopback listener
    assert (await client.post("/api/messages", json=emulator)).status == 202
    await connector.wait_for_messages(1)
    assert service(client).secret.token not in str(connector.authorizations)


def test_the_secret_is_sent_to_own_service_urls_only() -> None:
    secret = LocalSecret("s3cret")
    secret.add_own_service_url("http://127.0.0.1:3978")
    assert secret.headers_for("http://127.0.0.1:3978/") == {"Authorization": "Bearer s3cret"}
    assert secret.headers_for("http://127.0.0.1:3979") == {}
    assert secret.headers_for("http://127.0.0.1:3978.evil.example") == {}
    assert secret.admits_bearer("Bearer s3cret") and not secret.admits_bearer("Bearer s3cre")
    assert LocalSecret().token != LocalSecret().token


# Users bound into tokens -------------------------------------------------------------------------


async def test_a_generated_token_binds_a_user_the_server_chose(client: TestClient) -> None:
    conversation = await generate(client)
    user = token_user(conversation["token"])
    assert user is not None and user.startswith("dl_") and conversation["expires_in"] == 3600
    assert await say(client, conversation, "hi", "someone-else") == 403
    assert await say(client, conversation, "hi", user) == 200
    started = await client.post(f"{DL}/conversations", headers=bearer(conversation["token"]))
    assert (await started.json())["conversationId"] == conversation["conversationId"]


async def test_a_conversation_started_without_one_is_bound_to_its_first_user(
    client: TestClient,
) -> None:
    _, conversation = await start(client)
    assert await say(client, conversation, "hi", "first") == 200
    assert await say(client, conversation, "hi", "second") == 403


async def test_memory_follows_the_bound_user_and_a_spoof_reaches_none_of_it(
    client: TestClient, connector: FakeConnector
) -> None:
    alice = await generate(client)
    alice_id = token_user(alice["token"]) or ""
    assert await say(client, alice, "My name is Alice and I live in Oslo.", alice_id) == 200
    await bot_texts(client, alice, 2)
    # A refreshed token names the same user.
    refreshed = await (
        await client.post(f"{DL}/tokens/refresh", headers=bearer(alice["token"]))
    ).json()
    assert token_user(refreshed["token"]) == alice_id
    # A spoof: her id and channel straight to /api/messages, without the process's secret.
    spoof = message(
        "/memory", service_url=connector.url, channel="directline", user=alice_id, conversation="m"
    )
    assert (await client.post("/api/messages", json=spoof)).status == 202
    assert (await connector.wait_for_messages(1, conversation="m"))[-1]["text"] == NOTHING_KEPT
    forged = {LOCAL_CHANNEL_HEADER: "guess"}
    assert (await client.post("/api/messages", json=spoof, headers=forged)).status == 401
    # A conversation started without a generated token does not vouch for the id it names.
    _, mallory = await start(client)
    assert await say(client, mallory, "/memory", alice_id) == 200
    assert (await bot_texts(client, mallory, 2))[-1] == NOTHING_KEPT
    # Alice herself still has it, kept for her user (not only for this conversation).
    assert await say(client, alice, "/memory", alice_id) == 200
    assert "Your name is Alice." in (await bot_texts(client, alice, 3))[-1]
    key = f"directline/users/{alice_id}/memory"
    assert key in await client.server.app[RUNTIME].storage.read([key])


async def test_the_user_of_a_generated_token_is_welcomed_when_the_conversation_starts(
    client: TestClient,
) -> None:
    conversation = await generate(client)
    started = await client.post(f"{DL}/conversations", headers=bearer(conversation["token"]))
    assert started.status == 201
    assert await bot_texts(client, conversation, 1) == [WELCOME_TEXT]

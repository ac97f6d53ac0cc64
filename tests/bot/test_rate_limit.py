"""The per-user rate limit (issue 12, item 11): checked before the inbox write, shared by the
replicas through the configured store, refused with 429 and Retry-After, and one polite reply per
window instead of one per refused message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector
from tests.rate_windows import start_of_a_window
from tests.services import namespace_on

LIMIT = 3
NOTICE = "You're sending messages faster than I can answer"


@asynccontextmanager
async def replicas(settings: Settings, count: int) -> AsyncIterator[list[TestClient]]:
    """`count` apps on one store, each with the fake model: replicas of one bot."""
    clients = [
        TestClient(TestServer(create_app(settings, model=FakeChatModel()), host="127.0.0.1"))
        for _ in range(count)
    ]
    for client in clients:
        await client.start_server()
    try:
        yield clients
    finally:
        for client in clients:
            await client.close()


async def flood(clients: list[TestClient], connector: FakeConnector, count: int) -> list[int]:
    """One Emulator user sends `count` messages, round-robin over the replicas, in one
    conversation and under a new `from.id` each time (no one vouches for an Emulator's user, so
    the conversation is counted: changing the id escapes nothing); the statuses, in order."""
    statuses = []
    for n in range(count):
        activity = message(
            f"m{n}", service_url=connector.url, conversation="flood", user=f"flood-{n}"
        )
        response = await clients[n % len(clients)].post("/api/messages", json=activity)
        statuses.append(response.status)
        if response.status == 429:
            retry_after = int(response.headers["Retry-After"])
            assert 1 <= retry_after <= 60
    return statuses


def answered(texts: list[str]) -> int:
    return sum(t.startswith("fake:") for t in texts)


async def check_flood_is_refused_before_the_inbox(
    settings: Settings, connector: FakeConnector
) -> None:
    async with replicas(settings, 2) as clients:
        await start_of_a_window()
        statuses = await flood(clients, connector, 2 * LIMIT + 2)
        assert statuses == [202] * LIMIT + [429] * (LIMIT + 2)
        await connector.wait_for(
            lambda _: answered([m.get("text", "") for m in connector.messages()]) >= LIMIT
        )
        await asyncio.sleep(0.5)  # room for any reply that should not come
        texts = [m["text"] for m in connector.messages()]
        # The accepted messages were answered; the refused ones never reached a turn (they
        # were not stored), and the user was told once, not once per refused message.
        assert sorted(t for t in texts if t.startswith("fake:")) == [
            f"fake: m{n}" for n in range(LIMIT)
        ]
        assert sum(t.startswith(NOTICE) for t in texts) == 1, texts
        # Another user is not limited.
        other = message("me too", service_url=connector.url, conversation="o", user="other")
        assert (await clients[1].post("/api/messages", json=other)).status == 202
        assert (await connector.wait_for_messages(1, conversation="o"))[0]["text"] == "fake: me too"


async def test_sqlite_replicas_share_the_limit(tmp_path: Path, connector: FakeConnector) -> None:
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/state.db", rate_limit_per_minute=LIMIT, typing_interval_s=30
    )
    await check_flood_is_refused_before_the_inbox(settings, connector)


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
async def test_shared_store_replicas_share_the_limit(kind: str, connector: FakeConnector) -> None:
    async with namespace_on(kind) as (url, namespace):
        settings = Settings(
            storage=url,
            storage_namespace=namespace,
            rate_limit_per_minute=LIMIT,
            typing_interval_s=30,
        )
        await check_flood_is_refused_before_the_inbox(settings, connector)


async def test_the_limit_can_be_turned_off(tmp_path: Path, connector: FakeConnector) -> None:
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/state.db", rate_limit_per_minute=0, typing_interval_s=30
    )
    async with replicas(settings, 1) as clients:
        assert await flood(clients, connector, LIMIT + 2) == [202] * (LIMIT + 2)


async def test_every_activity_type_counts_and_only_messages_get_the_notice(
    tmp_path: Path, connector: FakeConnector
) -> None:
    """Reactions, feedback clicks (invokes) and events cost a turn each, so they count: with a
    limit of 3 a user's fourth activity is refused, whatever its type. The polite notice goes to
    the first refused message only, once."""
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/state.db", rate_limit_per_minute=LIMIT, typing_interval_s=30
    )

    def of_user(kind: str, **extra: Any) -> dict[str, Any]:
        activity = message(None, service_url=connector.url, user="busy", channel="msteams")
        return {**activity, "type": kind, **extra}

    reaction = of_user("messageReaction", replyToId="r1", reactionsAdded=[{"type": "like"}])
    click = of_user(
        "invoke",
        name="message/submitAction",
        value={"actionName": "feedback", "actionValue": {"reaction": "like", "feedback": "{}"}},
    )
    event = of_user("event", name="ping")
    async with replicas(settings, 1) as (client,):
        await start_of_a_window()
        statuses = []
        for n, activity in enumerate([reaction, click, event, reaction, click, event]):
            fresh = {**activity, "id": f"a{n}"}  # not a retry of an earlier one
            statuses.append((await client.post("/api/messages", json=fresh)).status)
        assert statuses == [202, 200, 202, 429, 429, 429]
        await asyncio.sleep(0.5)
        assert connector.messages() == [], "no notice for refused reactions, clicks or events"
        for text in ("one", "two"):
            hi = message(text, service_url=connector.url, user="busy", channel="msteams")
            assert (await client.post("/api/messages", json=hi)).status == 429
        (notice,) = await connector.wait_for_messages(1)
        await asyncio.sleep(0.5)
        assert notice["text"].startswith(NOTICE) and len(connector.messages()) == 1

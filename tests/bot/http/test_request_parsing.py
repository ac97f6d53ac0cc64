"""Bad input on /api/messages: a 4xx with a short reason, never a 500; the bot keeps answering."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.http.request_parsing import MAX_ID_BYTES, MAX_ITEMS
from bot.settings import Settings
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector
from tests.services import namespace_on

JSON = {"Content-Type": "application/json"}


def bad_bodies(service_url: str) -> list[tuple[str, bytes | str, dict[str, str], int]]:
    valid = message("hi", service_url=service_url)

    def without(*path: str) -> bytes:
        activity = json.loads(json.dumps(valid))
        target = activity
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return json.dumps(activity).encode()

    def with_(key: str, value: object) -> bytes:
        return json.dumps({**valid, key: value}).encode()

    return [
        ("malformed json", b'{"type": "message",', JSON, 400),
        ("json array", b"[1, 2]", JSON, 400),
        ("json string", b'"hello"', JSON, 400),
        ("json null", b"null", JSON, 400),
        ("json number", b"42", JSON, 400),
        ("empty body", b"", JSON, 400),
        ("whitespace body", b"  \n", JSON, 400),
        ("not utf-8", b"\xff\xfe\xfa{", JSON, 400),
        ("deep nesting", b"[" * 100_000 + b"]" * 100_000, JSON, 400),
        ("no type", without("type"), JSON, 400),
        ("no conversation", without("conversation"), JSON, 400),
        ("conversation not object", with_("conversation", "c1"), JSON, 400),
        ("no conversation id", with_("conversation", {}), JSON, 400),
        ("no serviceUrl", without("serviceUrl"), JSON, 400),
        ("file serviceUrl", with_("serviceUrl", "file:///etc/passwd"), JSON, 400),
        ("garbage serviceUrl", with_("serviceUrl", "::::"), JSON, 400),
        ("no from", without("from"), JSON, 400),
        ("no channelId", without("channelId"), JSON, 400),
        ("ill-typed field", with_("timestamp", {"not": "a date"}), JSON, 400),
        ("text/plain", json.dumps(valid).encode(), {"Content-Type": "text/plain"}, 415),
        ("no content type", json.dumps(valid).encode(), {}, 415),
        ("too large", b"{" + b" " * (2 * 1024 * 1024) + b"}", JSON, 413),
    ]


@pytest.mark.parametrize("index", range(22))
async def test_bad_input_is_a_4xx_and_the_bot_keeps_answering(
    index: int, bot_client: TestClient, connector: FakeConnector
) -> None:
    name, body, headers, expected = bad_bodies(connector.url)[index]
    response = await bot_client.post("/api/messages", data=body, headers=headers)
    assert response.status == expected, name
    text = await response.text()
    assert "Traceback" not in text and len(text) < 200, name
    assert connector.activities == [], f"{name}: nothing was sent"

    ok = await bot_client.post(
        "/api/messages", json=message("still here?", service_url=connector.url)
    )
    assert ok.status == 202
    assert (await connector.wait_for_messages(1))[0]["text"] == "fake: still here?"


async def test_get_is_405(bot_client: TestClient) -> None:
    assert (await bot_client.get("/api/messages")).status == 405


LONG = "x" * (MAX_ID_BYTES + 1)
WIDE = "😀" * (MAX_ID_BYTES // 4 + 1)  # fewer characters than the bound, more bytes


def over_the_bounds(service_url: str) -> list[tuple[str, dict[str, Any]]]:
    """(the field named in the reason, an activity past one bound)."""
    valid = message("hi", service_url=service_url)

    def merged(key: str, extra: dict[str, Any]) -> dict[str, Any]:
        return {**valid, key: {**valid[key], **extra}}

    def items(count: int, item: dict[str, Any]) -> list[dict[str, Any]]:
        return [dict(item) for _ in range(count)]

    return [
        ("activity.id", {**valid, "id": LONG}),
        ("activity.replyToId", {**valid, "replyToId": LONG}),
        ("activity.channelId", {**valid, "channelId": LONG}),
        ("activity.conversation.id", merged("conversation", {"id": LONG})),
        ("activity.conversation.id", merged("conversation", {"id": WIDE})),
        ("activity.from.id", merged("from", {"id": LONG})),
        ("activity.from.aadObjectId", merged("from", {"aadObjectId": LONG})),
        ("activity.recipient.id", merged("recipient", {"id": LONG})),
        (
            "activity.reactionsAdded",
            {
                **valid,
                "type": "messageReaction",
                "replyToId": "r1",
                "reactionsAdded": items(17, {"type": "like"}),
            },
        ),
        (
            "activity.reactionsAdded[].type",
            {
                **valid,
                "type": "messageReaction",
                "replyToId": "r1",
                "reactionsAdded": [{"type": LONG}],
            },
        ),
        ("activity.reactionsRemoved", {**valid, "reactionsRemoved": items(17, {"type": "like"})}),
        (
            "activity.membersAdded",
            {**valid, "type": "conversationUpdate", "membersAdded": items(257, {"id": "m"})},
        ),
        ("activity.membersRemoved", {**valid, "membersRemoved": items(257, {"id": "m"})}),
        ("activity.entities", {**valid, "entities": items(65, {"type": "clientInfo"})}),
        (
            "activity.attachments",
            {**valid, "attachments": items(33, {"contentType": "text/plain"})},
        ),
    ]


@pytest.mark.parametrize("index", range(15))
async def test_ids_and_lists_past_their_bound_are_a_400_naming_the_field(
    index: int, bot_client: TestClient, connector: FakeConnector
) -> None:
    field, activity = over_the_bounds(connector.url)[index]
    response = await bot_client.post("/api/messages", json=activity)
    assert response.status == 400, field
    reason = await response.text()
    assert reason.startswith(field + " ") and len(reason) < 100, reason
    await asyncio.sleep(0.2)
    assert connector.activities == [], f"{field}: nothing was sent"


def at_the_bounds(service_url: str) -> dict[str, Any]:
    """A message whose ids all have the longest length allowed, and as many reactions."""
    most = "y" * MAX_ID_BYTES
    activity = message("hi", service_url=service_url, conversation=most, user=most)
    activity["id"] = "i" * MAX_ID_BYTES
    activity["from"]["aadObjectId"] = most
    activity["entities"] = [{"type": "clientInfo", "locale": "en-US"}] * MAX_ITEMS["entities"]
    return activity


async def test_ids_at_their_bound_are_answered(
    bot_client: TestClient, connector: FakeConnector
) -> None:
    response = await bot_client.post("/api/messages", json=at_the_bounds(connector.url))
    assert response.status == 202
    assert (await connector.wait_for_messages(1))[0]["text"] == "fake: hi"


async def test_ids_at_their_bound_fit_postgresql_and_longer_ones_are_refused_first(
    connector: FakeConnector,
) -> None:
    """The longest ids allowed make storage keys that PostgreSQL indexes (an index entry holds
    at most 2,704 bytes); a random 4,000-character conversation id is a 400, not a database
    error."""
    async with namespace_on("postgresql") as (url, namespace):
        settings = Settings(storage=url, storage_namespace=namespace, typing_interval_s=30)
        client = TestClient(
            TestServer(create_app(settings, model=FakeChatModel()), host="127.0.0.1")
        )
        await client.start_server()
        try:
            at_bound = at_the_bounds(connector.url)
            assert (await client.post("/api/messages", json=at_bound)).status == 202
            assert (await connector.wait_for_messages(1))[0]["text"] == "fake: hi"
            random_id = secrets.token_urlsafe(3000)  # incompressible, as real ids are
            huge = message("hi", service_url=connector.url, conversation=random_id)
            response = await client.post("/api/messages", json=huge)
            assert response.status == 400
            assert (await response.text()).startswith("activity.conversation.id")
        finally:
            await client.close()

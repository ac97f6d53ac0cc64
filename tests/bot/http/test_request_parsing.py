"""Bad input on /api/messages: a 4xx with a short reason, never a 500; the bot keeps answering."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient

from tests.activities import message
from tests.connector import FakeConnector

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

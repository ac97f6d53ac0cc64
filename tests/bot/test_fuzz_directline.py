"""1,200 malformed requests to the local Direct Line (Web Chat's side and the bot's connector
side): no 5xx, no traceback, and afterwards Web Chat's usual conversation is answered."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

from aiohttp.test_utils import TestClient

from tests.bot.test_fuzz import CONTENT_TYPES, random_json

SEED = 20261201
DL = "/v3/directline"
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


def routes(conversation: str) -> list[tuple[str, str]]:
    """(method, path): the routes as Web Chat and the bot use them, and some that do not exist."""
    return [
        ("POST", f"{DL}/conversations"),
        ("GET", f"{DL}/conversations/{conversation}"),
        ("GET", f"{DL}/conversations/unknown"),
        ("POST", f"{DL}/conversations/{conversation}/activities"),
        ("GET", f"{DL}/conversations/{conversation}/activities"),
        ("POST", f"{DL}/conversations/unknown/activities"),
        ("GET", f"{DL}/conversations/{conversation}/stream"),
        ("POST", f"{DL}/tokens/refresh"),
        ("POST", f"/v3/conversations/{conversation}/activities"),
        ("POST", f"/v3/conversations/{conversation}/activities/reply-1"),
        ("PUT", f"/v3/conversations/{conversation}/activities/reply-1"),
        ("PUT", "/v3/conversations/unknown/activities/x"),
        ("POST", f"{DL}/conversations/%00/activities"),
        ("GET", f"{DL}/conversations/{'x' * 300}"),
    ]


def mutated_activity(rng: random.Random) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "type": "message",
        "text": "hi",
        "from": {"id": "fuzz", "role": "user"},
        "entities": [{"type": "streaminfo", "streamId": "s", "streamType": "streaming"}],
        "channelData": {"streamType": "final"},
    }
    for _ in range(rng.randint(1, 3)):
        field = rng.choice([*activity, "id", "replyToId", "value", "timestamp"])
        if rng.random() < 0.3:
            activity.pop(field, None)
        else:
            activity[field] = random_json(rng)
    return activity


def body(rng: random.Random) -> tuple[bytes, str]:
    kind = rng.random()
    if kind < 0.25:
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 64))), rng.choice(
            CONTENT_TYPES
        )
    if kind < 0.5:
        return json.dumps(random_json(rng)).encode(), "application/json"
    if kind < 0.9:
        return json.dumps(mutated_activity(rng)).encode(), "application/json"
    return b"", rng.choice(CONTENT_TYPES)


def headers(rng: random.Random, token: str, port: int) -> dict[str, str]:
    chosen: dict[str, str] = {}
    auth = rng.choice(["valid", "none", "garbage", "basic", "empty"])
    chosen["Authorization"] = {
        "valid": f"Bearer {token}",
        "none": "",
        "garbage": "Bearer \u00e9\u00e9 x y",
        "basic": "Basic dXNlcjpwYXNz",
        "empty": "Bearer ",
    }[auth]
    if rng.random() < 0.15:
        chosen["Host"] = rng.choice(["evil.example", f"127.0.0.1:{port}", "[::1", ":::", "a b"])
    if rng.random() < 0.15:
        chosen["Origin"] = rng.choice(["null", "https://evil.example", f"http://127.0.0.1:{port}"])
    return {k: v for k, v in chosen.items() if v}


def query(rng: random.Random, token: str) -> str:
    options = ["", "?watermark=3", "?watermark=-1", "?watermark=x", "?watermark=1e9", f"?t={token}"]
    return rng.choice([*options, "?watermark=" + "9" * 40, "?t=%ff"])


async def test_fuzzed_direct_line_requests_never_get_a_5xx(bot_client: TestClient) -> None:
    rng = random.Random(SEED)
    started = await (await bot_client.post(f"{DL}/conversations")).json()
    conversation, token = started["conversationId"], started["token"]
    port = bot_client.server.port
    statuses: Counter[int] = Counter()
    for _ in range(1200):
        method, path = rng.choice(routes(conversation))
        method = method if rng.random() < 0.9 else rng.choice(METHODS)
        path += query(rng, token)
        data, content_type = body(rng)
        sent = headers(rng, token, port)
        if content_type and method != "GET":
            sent["Content-Type"] = content_type
        response = await bot_client.request(
            method, path, data=data if method != "GET" else None, headers=sent
        )
        text = await response.text()
        statuses[response.status] += 1
        assert response.status < 500, (method, path, sent, data[:200], response.status, text)
        assert "Traceback" not in text
    assert sum(statuses.values()) >= 1000
    assert statuses[403] > 100 and statuses[400] + statuses[404] + statuses[415] > 100, statuses

    # Web Chat's conversation, as usual, afterwards.
    fresh = await (await bot_client.post(f"{DL}/conversations")).json()
    auth = {"Authorization": f"Bearer {fresh['token']}"}
    url = f"{DL}/conversations/{fresh['conversationId']}/activities"
    activity = {"type": "message", "text": "after the storm", "from": {"id": "calm-user"}}
    assert (await bot_client.post(url, json=activity, headers=auth)).status == 200
    texts: list[str | None] = []
    for _ in range(200):
        polled = await (await bot_client.get(url, headers=auth)).json()
        texts = [a.get("text") for a in polled["activities"]]
        if "fake: after the storm" in texts:
            break
        await asyncio.sleep(0.05)
    assert "fake: after the storm" in texts
    assert (await bot_client.get("/healthz")).status == 200


async def test_header_bytes_that_are_not_utf8_are_refused_not_a_500(bot_client: TestClient) -> None:
    started = await (await bot_client.post(f"{DL}/conversations")).json()
    for path, header in [
        (f"{DL}/tokens/refresh", b"Authorization: Bearer \xff\xfe"),
        (f"{DL}/conversations/{started['conversationId']}/activities", b"Authorization: \xff"),
    ]:
        reader, writer = await asyncio.open_connection("127.0.0.1", bot_client.server.port)
        writer.write(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
        await writer.drain()
        status_line = (await reader.read()).split(b"\r\n", 1)[0]
        writer.close()
        assert status_line.split()[1] in (b"400", b"403"), (path, status_line)

"""1,200 malformed requests: no 5xx, no traceback, and the next valid turn is answered."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from aiohttp.test_utils import TestClient

from tests.activities import message
from tests.bot.http.test_request_parsing import bad_bodies
from tests.connector import FakeConnector

SEED = 20261127
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "",
    "application/x-www-form-urlencoded",
    "application/vnd.api+json",
]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = (
        ["null", "bool", "int", "float", "str", "list", "dict"]
        if depth < 4
        else ["null", "int", "str"]
    )
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.randint(-(2**63), 2**63)
    if kind == "float":
        return rng.uniform(-1e300, 1e300)
    if kind == "str":
        return "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 12)))
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = [
        "type",
        "id",
        "text",
        "conversation",
        "serviceUrl",
        "from",
        "recipient",
        "channelId",
        "entities",
        "value",
        "membersAdded",
        "deliveryMode",
        "timestamp",
        "attachments",
        "x",
    ]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def mutated_activity(rng: random.Random, service_url: str) -> dict[str, Any]:
    """A valid activity with one to three fields replaced by random values or removed."""
    activity = message("hi", service_url=service_url, conversation=f"fuzz-{rng.randint(0, 9)}")
    for _ in range(rng.randint(1, 3)):
        field = rng.choice(list(activity))
        if rng.random() < 0.3:
            del activity[field]
        else:
            activity[field] = random_json(rng)
    return activity


def requests(rng: random.Random, service_url: str) -> list[tuple[bytes, str]]:
    cases: list[tuple[bytes, str]] = []
    for _, body, headers, _ in bad_bodies(service_url):  # the known SDK breakers, 20x each way
        data = body if isinstance(body, bytes) else body.encode()
        cases.append((data, headers.get("Content-Type", "")))
    for _ in range(400):
        cases.append(
            (
                bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 64))),
                rng.choice(CONTENT_TYPES),
            )
        )
    for _ in range(400):
        cases.append((json.dumps(random_json(rng)).encode(), "application/json"))
    for _ in range(380):
        cases.append((json.dumps(mutated_activity(rng, service_url)).encode(), "application/json"))
    return cases


async def test_fuzzed_requests_never_get_a_5xx(
    bot_client: TestClient, connector: FakeConnector
) -> None:
    rng = random.Random(SEED)
    cases = requests(rng, connector.url)
    assert len(cases) >= 1000
    statuses: Counter[int] = Counter()
    for body, content_type in cases:
        headers = {"Content-Type": content_type} if content_type else {}
        response = await bot_client.post("/api/messages", data=body, headers=headers)
        text = await response.text()
        statuses[response.status] += 1
        assert response.status < 500, (response.status, body[:200], text)
        assert "Traceback" not in text
    assert statuses[400] > 500, statuses  # most are rejected with a reason

    ok = await bot_client.post(
        "/api/messages",
        json=message(
            "after the storm", service_url=connector.url, conversation="calm", user="new-user"
        ),
    )
    assert ok.status == 202
    replies = await connector.wait_for_messages(1, conversation="calm", timeout=30)
    assert replies[-1]["text"] == "fake: after the storm"
    assert (await bot_client.get("/healthz")).status == 200

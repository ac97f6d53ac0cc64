"""1,200 malformed requests to the model server (models/serving/model_server.py): no 5xx, no
traceback, the server stays up, and a normal completion is answered afterwards."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from models.fake import FakeChatModel
from models.serving.model_server import ServerOptions, create_model_server
from tests.bot.test_fuzz import CONTENT_TYPES, random_json

SEED = 20261202
KEY = "fuzz-key"
FIELDS = [
    "messages",
    "model",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "repetition_penalty",
    "stop",
    "n",
    "frequency_penalty",
    "presence_penalty",
]
ODD_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    2**70,
    1e309,
    "NaN",
    "",
    "x" * 5000,
    [],
    {},
    [None],
    [{"role": "user"}],
    [{"role": "tool", "content": "x"}],
    [{"role": "user", "content": ["a", {"type": "text", "text": 1}]}],
    [{"role": "user", "content": {"text": "hi"}}],
]


def valid() -> dict[str, Any]:
    return {
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "max_tokens": 8,
        "temperature": 0,
        "stream": False,
    }


def mutated(rng: random.Random) -> dict[str, Any]:
    request = valid()
    for _ in range(rng.randint(1, 3)):
        field = rng.choice(FIELDS)
        if rng.random() < 0.25:
            request.pop(field, None)
        elif rng.random() < 0.5:
            request[field] = rng.choice(ODD_VALUES)
        else:
            request[field] = random_json(rng)
    return request


def case(rng: random.Random) -> tuple[str, str, bytes, dict[str, str]]:
    tokens = [f"Bearer {KEY}"] * 4 + ["Bearer nope", "", "x", "Bearer \u00e9\u00e8"]
    headers = {"Authorization": rng.choice(tokens)}
    path = rng.choice(
        ["/v1/chat/completions"] * 8 + ["/v1/models", "/health", "/v1/x", "/v1/chat/completions/"]
    )
    method = "POST" if path.endswith("completions") or rng.random() < 0.3 else "GET"
    kind = rng.random()
    if kind < 0.2:
        data = bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 64)))
        headers["Content-Type"] = rng.choice(CONTENT_TYPES) or "application/octet-stream"
    elif kind < 0.4:
        data = json.dumps(random_json(rng)).encode()
        headers["Content-Type"] = "application/json"
    else:
        data = json.dumps(mutated(rng)).encode()
        headers["Content-Type"] = "application/json"
    return method, path, data, {k: v for k, v in headers.items() if v}


async def test_fuzzed_model_server_requests_never_get_a_5xx() -> None:
    server = create_model_server(FakeChatModel(), ServerOptions(api_key=KEY))
    client = TestClient(TestServer(server, host="127.0.0.1"))
    await client.start_server()
    rng = random.Random(SEED)
    statuses: Counter[int] = Counter()
    try:
        for _ in range(1200):
            method, path, data, headers = case(rng)
            response = await client.request(
                method, path, data=data if method == "POST" else None, headers=headers
            )
            text = await response.text()
            statuses[response.status] += 1
            assert response.status < 500, (method, path, data[:300], response.status, text)
            assert "Traceback" not in text
        assert sum(statuses.values()) >= 1000
        assert statuses[400] > 300 and statuses[401] > 50, statuses

        body = {"messages": [{"role": "user", "content": "after the storm"}], "max_tokens": 16}
        auth = {"Authorization": f"Bearer {KEY}"}
        response = await client.post("/v1/chat/completions", json=body, headers=auth)
        assert response.status == 200
        reply = await response.json()
        assert reply["choices"][0]["message"]["content"] == "fake: after the storm"
        assert (await client.get("/health")).status == 200
    finally:
        await client.close()


async def test_header_bytes_that_are_not_utf8_get_a_401_not_a_500() -> None:
    server = TestServer(create_model_server(FakeChatModel(), ServerOptions(api_key=KEY)))
    await server.start_server()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        status_line = (await reader.read()).split(b"\r\n", 1)[0]
        writer.close()
    finally:
        await server.close()
    assert status_line == b"HTTP/1.1 401 Unauthorized"

"""The local Direct Line refuses what a foreign web page can send (issue 12, item 3): a
cross-site "simple" POST (text/plain, form data), a request whose Host is not this server (DNS
rebinding), and an Origin other than the page's own (unless configured for a reverse proxy)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.channels.directline import DIRECTLINE
from bot.settings import Settings
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector

DL = "/v3/directline"
START_BODY = json.dumps({"user": {"id": "visitor", "name": "Visitor"}})


async def started_client(settings: Settings) -> TestClient:
    client = TestClient(TestServer(create_app(settings, model=FakeChatModel()), host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    started = await started_client(settings)
    yield started
    await started.close()


def conversations(client: TestClient) -> int:
    return len(client.server.app[DIRECTLINE].store)


def own_origin(client: TestClient) -> str:
    return f"http://127.0.0.1:{client.server.port}"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_a_cross_site_simple_post_starts_nothing(
    client: TestClient, content_type: str
) -> None:
    response = await client.post(
        f"{DL}/conversations", data=START_BODY, headers={"Content-Type": content_type}
    )
    assert response.status == 415
    await asyncio.sleep(0.2)  # a welcome turn would have been forwarded by now
    assert conversations(client) == 0


async def test_a_simple_post_of_an_activity_is_refused(client: TestClient) -> None:
    started = await (await client.post(f"{DL}/conversations")).json()
    url = f"{DL}/conversations/{started['conversationId']}/activities"
    headers = {"Authorization": f"Bearer {started['token']}", "Content-Type": "text/plain"}
    body = json.dumps({"type": "message", "text": "hi", "from": {"id": "u"}})
    assert (await client.post(url, data=body, headers=headers)).status == 415
    polled = await client.get(url, headers={"Authorization": f"Bearer {started['token']}"})
    assert (await polled.json())["activities"] == []


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}", "localhost.evil"],
)
async def test_a_foreign_host_is_refused_everywhere(client: TestClient, host: str) -> None:
    headers = {"Host": host.format(port=client.server.port)}
    assert (await client.post(f"{DL}/conversations", headers=headers)).status == 403
    bot_side = await client.post(
        "/v3/conversations/x/activities", json={"type": "message"}, headers=headers
    )
    assert bot_side.status == 403
    messages = await client.post(
        "/api/messages", json=message("hi", service_url="http://127.0.0.1:9"), headers=headers
    )
    assert messages.status == 403
    assert conversations(client) == 0


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "localhost"]
)
async def test_loopback_hosts_are_served(client: TestClient, host: str) -> None:
    headers = {"Host": host.format(port=client.server.port)}
    assert (await client.post(f"{DL}/conversations", headers=headers)).status == 201


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:1"])
async def test_a_foreign_origin_is_refused(client: TestClient, origin: str) -> None:
    headers = {"Origin": origin, "Content-Type": "application/json"}
    response = await client.post(f"{DL}/conversations", data=START_BODY, headers=headers)
    assert response.status == 403
    ws = client.session.ws_connect(
        client.make_url(f"{DL}/conversations/x/stream?t=y"), headers={"Origin": origin}
    )
    with pytest.raises(Exception, match="403"):
        async with ws:
            pass
    assert conversations(client) == 0


async def test_the_pages_own_origin_is_served(client: TestClient) -> None:
    headers = {"Origin": own_origin(client), "Content-Type": "application/json"}
    response = await client.post(f"{DL}/conversations", data=START_BODY, headers=headers)
    assert response.status == 201
    assert conversations(client) == 1


async def test_a_reverse_proxy_host_and_origin_can_be_allowed(settings: Settings) -> None:
    proxied = dataclasses.replace(
        settings, allowed_hosts=("chat.example.org",), allowed_origins=("https://chat.example.org",)
    )
    client = await started_client(proxied)
    try:
        headers = {"Host": "chat.example.org", "Origin": "https://chat.example.org"}
        assert (await client.post(f"{DL}/conversations", headers=headers)).status == 201
        other = {"Host": "chat.example.org", "Origin": "https://other.example.org"}
        assert (await client.post(f"{DL}/conversations", headers=other)).status == 403
    finally:
        await client.close()


async def test_web_chat_and_the_emulator_still_work(
    client: TestClient, connector: FakeConnector, tmp_path: Path
) -> None:
    # The Emulator: JSON to /api/messages on loopback, no Origin.
    emulator = message("hello", service_url=connector.url)
    assert (await client.post("/api/messages", json=emulator)).status == 202
    assert (await connector.wait_for_messages(1))[0]["text"] == "fake: hello"
    # Web Chat from the /chat page: its own origin, JSON bodies.
    headers = {"Origin": own_origin(client)}
    started = await (
        await client.post(f"{DL}/conversations", json={"user": {"id": "u"}}, headers=headers)
    ).json()
    auth = {**headers, "Authorization": f"Bearer {started['token']}"}
    url = f"{DL}/conversations/{started['conversationId']}/activities"
    activity = {"type": "message", "text": "hi there", "from": {"id": "u"}}
    assert (await client.post(url, json=activity, headers=auth)).status == 200
    for _ in range(100):
        texts = [
            a.get("text")
            for a in (await (await client.get(url, headers=auth)).json())["activities"]
        ]
        if "fake: hi there" in texts:
            break
        await asyncio.sleep(0.05)
    assert "fake: hi there" in texts

"""The local Direct Line's uploads and typing are bounded: files per upload, bytes per upload
(with or without Content-Length), files kept per conversation (one conversation never evicts
another's), and the user's typing activities kept in a conversation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.channels.directline import add_directline_routes
from bot.channels.directline.uploads import MAX_UPLOAD_FILES
from tests.bot.channels.test_directline import DL, WebChatClient

FILE_BYTES = 1000  # max_upload_bytes of these servers
BODY_BYTES = 4096  # max_body_bytes: the activity part's bound


async def bot_accepts(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202)


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    """The local Direct Line alone, in front of a bot endpoint that takes every activity."""
    app = web.Application()
    app.router.add_post("/api/messages", bot_accepts)
    add_directline_routes(
        app, anonymous=True, max_upload_bytes=FILE_BYTES, max_body_bytes=BODY_BYTES
    )
    started = TestClient(TestServer(app, host="127.0.0.1"))
    await started.start_server()
    yield started
    await started.close()


def upload_body(files: list[bytes]) -> aiohttp.MultipartWriter:
    """What Direct Line JS posts: the activity part, then one part per file."""
    body = aiohttp.MultipartWriter("form-data")
    activity = {"type": "message", "from": {"id": "web-user", "role": "user"}}
    part = body.append(json.dumps(activity), {"Content-Type": "application/vnd.microsoft.activity"})
    part.set_content_disposition("form-data", name="activity")
    for i, data in enumerate(files):
        part = body.append(data, {"Content-Type": "text/plain"})
        part.set_content_disposition("form-data", name="file", filename=f"f{i}.txt")
    return body


async def upload(
    web_chat: WebChatClient, files: list[bytes], *, chunked: bool = False
) -> aiohttp.ClientResponse:
    url = f"{DL}/conversations/{web_chat.conversation['conversationId']}/upload?userId=web-user"
    body = upload_body(files)
    if not chunked:
        return await web_chat.client.post(url, data=body, headers=web_chat.headers)
    raw = bytearray()

    class Sink:
        async def write(self, data: bytes) -> None:
            raw.extend(data)

    await body.write(Sink())  # type: ignore[arg-type]

    async def pieces() -> AsyncIterator[bytes]:  # no Content-Length: the body is chunked
        for start in range(0, len(raw), 512):
            yield bytes(raw[start : start + 512])

    headers = {**web_chat.headers, "Content-Type": body.headers["Content-Type"]}
    return await web_chat.client.post(url, data=pieces(), headers=headers)


async def started(client: TestClient) -> WebChatClient:
    web_chat = WebChatClient(client)
    await web_chat.start()
    return web_chat


async def file_urls(web_chat: WebChatClient) -> list[str]:
    """The files of the user's uploads, as the bot is given them (paths on this server)."""
    echoes = [a for a in await web_chat.poll() if a["type"] == "message"]
    return [
        a["contentUrl"].removeprefix(echo["serviceUrl"])
        for echo in echoes
        for a in echo.get("attachments") or []
    ]


async def test_an_upload_of_more_files_than_the_bound_is_refused(client: TestClient) -> None:
    web_chat = await started(client)
    response = await upload(web_chat, [b"x"] * (MAX_UPLOAD_FILES + 1))
    assert response.status == 413
    assert await response.text() == f"an upload may carry at most {MAX_UPLOAD_FILES} files"
    assert await file_urls(web_chat) == [], "nothing reached the conversation"
    assert (await upload(web_chat, [b"x"] * MAX_UPLOAD_FILES)).status == 200


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_upload_past_its_byte_bound_is_refused(client: TestClient, chunked: bool) -> None:
    web_chat = await started(client)
    bound = 4 * (FILE_BYTES + 1) + BODY_BYTES
    response = await upload(web_chat, [b"a" * (bound + 1)], chunked=chunked)
    assert response.status == 413
    assert await response.text() == f"an upload may carry at most {bound} bytes"
    assert await file_urls(web_chat) == []


async def test_a_file_over_the_limit_is_still_kept_cut(client: TestClient) -> None:
    web_chat = await started(client)
    assert (await upload(web_chat, [b"a" * (3 * FILE_BYTES)])).status == 200
    [url] = await file_urls(web_chat)
    assert len(await (await client.get(url)).read()) == FILE_BYTES + 1


async def test_one_conversation_cannot_evict_another_conversations_files(
    client: TestClient,
) -> None:
    alice, mallory = await started(client), await started(client)
    assert (await upload(alice, [b"alice's notes"])).status == 200
    [alices_file] = await file_urls(alice)
    for _ in range(4):  # 120 files, more than the whole store used to keep
        assert (await upload(mallory, [b"spam"] * 30)).status == 200
    mallorys = await file_urls(mallory)
    served = await client.get(alices_file)
    assert served.status == 200 and await served.read() == b"alice's notes"
    assert (await client.get(mallorys[0])).status == 404, "its own oldest files went"
    assert (await client.get(mallorys[-1])).status == 200


async def test_only_the_users_latest_typing_is_kept(client: TestClient) -> None:
    web_chat = await started(client)
    url = f"{DL}/conversations/{web_chat.conversation['conversationId']}/activities"
    typing: dict[str, Any] = {"type": "typing", "from": {"id": "web-user"}}
    ids = []
    for _ in range(50):
        response = await client.post(url, json=typing, headers=web_chat.headers)
        assert response.status == 200
        ids.append((await response.json())["id"])
    await web_chat.say("hello")
    history = await web_chat.poll()
    assert [a["id"] for a in history if a["type"] == "typing"] == [ids[-1]]
    assert [a["text"] for a in history if a["type"] == "message"] == ["hello"]

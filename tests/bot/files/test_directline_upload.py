"""Web Chat's upload on botloom's local Direct Line: the multipart POST Direct Line JS sends, the
file served back to the bot from its own serviceUrl origin, and the cited answer."""

from __future__ import annotations

import dataclasses
import json

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from models.embeddings import HashingEmbeddingModel
from models.fake import FakeChatModel
from tests.bot.channels.test_directline import DL, WebChatClient, stream_type
from tests.bot.files.conftest import fare_pdf

Activity = dict


def upload_form(text: str | None, files: list[tuple[str, bytes, str]]) -> aiohttp.FormData:
    """What Direct Line JS posts: the activity (without attachments) as a Blob of type
    application/vnd.microsoft.activity, then each file under the field "file"."""
    form = aiohttp.FormData()
    activity = {"type": "message", "from": {"id": "web-user", "role": "user"}}
    if text is not None:
        activity["text"] = text
    activity["attachments"] = [{"contentType": t, "name": n} for n, _, t in files]  # no URLs
    form.add_field(
        "activity", json.dumps(activity), content_type="application/vnd.microsoft.activity"
    )
    for name, data, content_type in files:
        form.add_field("file", data, filename=name, content_type=content_type)
    return form


def messages(seen: list[Activity]) -> list[Activity]:
    return [a for a in seen if a["type"] == "message" and a["from"]["role"] == "bot"]


async def test_an_uploaded_pdf_is_read_and_a_question_answered_from_it(
    files_settings: Settings, model: FakeChatModel
) -> None:
    app = create_app(files_settings, model=model, embedding_model=HashingEmbeddingModel())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        web_chat = WebChatClient(client)
        await web_chat.start()
        conversation = web_chat.conversation["conversationId"]
        url = f"{DL}/conversations/{conversation}/upload?userId=web-user"
        form = upload_form("What is the night fare?", [("fare-rules.pdf", fare_pdf(), "")])
        response = await client.post(url, data=form, headers=web_chat.headers)
        assert response.status == 200, await response.text()
        seen = await web_chat.poll_until(lambda seen: len(messages(seen)) >= 3, within_s=60)
        echo = next(a for a in seen if a["from"]["role"] == "user" and a.get("attachments"))
        [attachment] = echo["attachments"]
        assert attachment["name"] == "fare-rules.pdf"
        assert attachment["contentType"] == "application/pdf", "guessed from the file name"
        assert attachment["contentUrl"].startswith(echo["serviceUrl"] + f"{DL}/files/")
        informative = next(a for a in seen if stream_type(a) == "informative")
        assert informative["text"] == "Reading fare-rules.pdf…"
        texts = [m["text"] for m in messages(seen)]
        assert "I've read fare-rules.pdf." in texts
        assert any(
            t.startswith("The night fare is 42 crowns per crossing [1].")
            and '"fare-rules.pdf"' in t
            for t in texts
        ), texts
        served = await client.get(attachment["contentUrl"].removeprefix(echo["serviceUrl"]))
        assert served.status == 200 and served.headers["X-Content-Type-Options"] == "nosniff"
        assert served.headers["Content-Disposition"].startswith("attachment;")
    finally:
        await client.close()


async def test_an_upload_needs_the_conversation_token_and_an_activity(
    files_settings: Settings, model: FakeChatModel
) -> None:
    app = create_app(files_settings, model=model, embedding_model=HashingEmbeddingModel())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        web_chat = WebChatClient(client)
        await web_chat.start()
        url = f"{DL}/conversations/{web_chat.conversation['conversationId']}/upload?userId=u"
        form = upload_form("hi", [("a.md", b"# A", "text/markdown")])
        assert (await client.post(url, data=form)).status == 403, "no token"
        no_activity = aiohttp.FormData()
        no_activity.add_field("file", b"# A", filename="a.md", content_type="text/markdown")
        response = await client.post(url, data=no_activity, headers=web_chat.headers)
        assert response.status == 400
    finally:
        await client.close()


async def test_an_upload_over_the_limit_is_kept_cut_and_the_bot_refuses_it(
    files_settings: Settings, model: FakeChatModel
) -> None:
    settings = dataclasses.replace(files_settings, max_upload_mb=1.0)
    app = create_app(settings, model=model, embedding_model=HashingEmbeddingModel())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        web_chat = WebChatClient(client)
        await web_chat.start()
        url = f"{DL}/conversations/{web_chat.conversation['conversationId']}/upload?userId=u"
        big = b"a" * (3 * 1024 * 1024)
        form = upload_form(None, [("big.txt", big, "text/plain")])
        response = await client.post(url, data=form, headers=web_chat.headers)
        assert response.status == 200, await response.text()
        seen = await web_chat.poll_until(lambda seen: len(messages(seen)) >= 2, within_s=30)
        assert messages(seen)[-1]["text"].startswith("Sorry, big.txt is larger than I can read.")
        echo = next(a for a in seen if a["from"]["role"] == "user" and a.get("attachments"))
        path = echo["attachments"][0]["contentUrl"].removeprefix(echo["serviceUrl"])
        served = await (await client.get(path)).read()
        assert len(served) == 1024 * 1024 + 1, "kept cut just past the limit"
    finally:
        await client.close()

"""Files in chat on the wire: a real server with the fake model and the hashing embedder, the fake
connector serving the files as the Emulator and Teams' SharePoint would."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import AsyncIterator, Sequence
from typing import Any

import docx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from models import ChatMessage
from models.embeddings import HashingEmbeddingModel
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector
from tests.knowledge.pdf_files import text_pdf

Activity = dict[str, Any]
FARE_LINES = [
    "Fare rules of the Harrowgate ferry.",
    "The night fare between midnight and five is 42 crowns per crossing.",
    "Bicycles travel free on every crossing.",
]
LEAVE_TEXT = "Parental leave at Ostrava Mills is nineteen weeks on full pay."


def answer_from_sources(prompt: Sequence[ChatMessage]) -> str:
    """A model that read its sources: it repeats the sentence a question is about."""
    question = prompt[-1].content
    if "Question:" in question and "42 crowns" in question:
        return "The night fare is 42 crowns per crossing."
    if "Question:" in question and "nineteen weeks" in question:
        return "Parental leave is nineteen weeks on full pay."
    return "I am not sure."


def fare_pdf() -> bytes:
    return text_pdf([FARE_LINES, ["Dogs on a lead are welcome on deck."]], title="Fare rules")


def leave_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Leave policy", level=1)
    document.add_paragraph(LEAVE_TEXT)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.fixture
def files_settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        stream_interval_teams_s=0.1,
        knowledge_min_score=0.2,
        knowledge_answered_min_score=0.0,  # the bars are MiniLM's, not the hashing embedder's
        embedding_model="hashing",
    )


@pytest.fixture
def model() -> FakeChatModel:
    return FakeChatModel(reply=answer_from_sources, delay=0.01)


@pytest.fixture
async def client(files_settings: Settings, model: FakeChatModel) -> AsyncIterator[TestClient]:
    app = create_app(files_settings, model=model, embedding_model=HashingEmbeddingModel())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def send(
    client: TestClient,
    connector: FakeConnector,
    text: str | None,
    *,
    replies: int = 1,
    attachments: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> list[Activity]:
    """POST a message and wait for `replies` more messages; the new messages."""
    conversation = extra.get("conversation")
    before = len(connector.messages(conversation))
    if attachments is not None:
        extra["attachments"] = attachments
    conversation_type = extra.pop("conversation_type", None)
    activity = message(text, service_url=connector.url, **extra)
    if conversation_type:
        activity["conversation"]["conversationType"] = conversation_type
    response = await client.post("/api/messages", json=activity)
    assert response.status in (200, 201, 202), await response.text()
    found = await connector.wait_for_messages(before + replies, conversation, timeout=60)
    return found[before:]

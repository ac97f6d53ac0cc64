"""A grounded reply in the real Web Chat UI (headless chromium) on botloom's /chat page: Web Chat
draws the citation from the Message entity and the reference definitions, naming the document,
instead of showing the definitions as text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bot.knowledge.setup import build_knowledge
from bot.settings import Settings
from models import ChatMessage, ChatModel
from models.embeddings import HashingEmbeddingModel
from models.fake import FakeChatModel
from tests.browser.conftest import Browser
from tests.knowledge.conftest import EVAL_DOCS

pytestmark = pytest.mark.browser


def answer(prompt: Sequence[ChatMessage]) -> str:
    if "warranty of seven years" in prompt[-1].content:
        return "The Aurora-3 comes with a warranty of seven years."
    return "I am not sure."


@pytest.fixture
def bot_model() -> ChatModel | None:
    return FakeChatModel(reply=answer, delay=0.05)


@pytest.fixture
async def bot_settings(tmp_path: Path) -> Settings:
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/state.db",
        embedding_model="hashing",
        knowledge_min_score=0.2,
        knowledge_answered_min_score=0.0,  # the bars are MiniLM's, not the hashing embedder's
    )
    knowledge = build_knowledge(settings, embedding_model=HashingEmbeddingModel())
    try:
        await knowledge.ingestion().add([EVAL_DOCS / "products.html"])
    finally:
        await knowledge.close()
    return settings


async def test_web_chat_shows_the_citation_naming_the_document(
    browser: Browser, bot_server: TestServer
) -> None:
    result = await browser.drive(
        {
            "url": str(bot_server.make_url("/chat")),
            "message": "How long is the warranty of the Aurora-3?",
            "welcomeBubbles": 1,
            "screenshots": {"dir": str(browser.screenshots), "prefix": "citations"},
        }
    )
    assert "error" not in result, result.get("error")
    final = result["samples"][-1]["texts"][result["baseline"]]
    assert "warranty of seven years" in final
    assert "Kestrelmoor product sheet" in final, final
    assert "cite:1" not in final, "the reference definition is drawn, not shown as text"
    print(f"\n[figure] Web Chat citation bubble: {final!r}; screenshots {result['screenshots']}")

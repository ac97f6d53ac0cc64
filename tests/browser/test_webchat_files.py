"""A file attached with Web Chat's paperclip on botloom's /chat page (headless chromium): Web Chat
uploads it to the local Direct Line with the question, the bot reads it, acknowledges it and
answers citing the file by its name."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bot.settings import Settings
from models import ChatModel
from models.fake import FakeChatModel
from tests.bot.files.conftest import answer_from_sources, fare_pdf
from tests.browser.conftest import Browser

pytestmark = pytest.mark.browser


@pytest.fixture
def bot_model() -> ChatModel | None:
    return FakeChatModel(reply=answer_from_sources, delay=0.05)


@pytest.fixture
def bot_settings(tmp_path: Path) -> Settings:
    return Settings(
        storage=f"sqlite:///{tmp_path}/state.db",
        embedding_model="hashing",
        knowledge_min_score=0.2,
        knowledge_answered_min_score=0.0,  # the bars are MiniLM's, not the hashing embedder's
    )


async def test_a_file_attached_with_the_paperclip_is_read_and_cited(
    browser: Browser, bot_server: TestServer, tmp_path: Path
) -> None:
    attached = tmp_path / "fare-rules.pdf"
    attached.write_bytes(fare_pdf())
    result = await browser.drive(
        {
            "url": str(bot_server.make_url("/chat")),
            "message": "What is the night fare of the ferry?",
            "attach": str(attached),
            "finals": 2,
            "welcomeBubbles": 1,
            "screenshots": {"dir": str(browser.screenshots), "prefix": "files"},
        }
    )
    assert "error" not in result, result.get("error")
    shown = result["samples"][-1]["texts"][result["baseline"] :]
    texts = [t.replace("\u2019", "'") for t in shown]  # Web Chat's Markdown curls apostrophes
    assert texts[0] == "I've read fare-rules.pdf."
    answer = texts[-1]
    assert answer.startswith("The night fare is 42 crowns per crossing"), texts
    assert "fare-rules.pdf" in answer, "the citation names the file"
    assert "[1]:" not in answer, "Web Chat draws the citation, not the definition as text"
    assert any("fare-rules.pdf" in t for t in result["userTexts"]), "the user's bubble shows it"

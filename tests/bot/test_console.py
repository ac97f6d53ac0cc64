"""`botloom chat`: the same bot in a terminal, with state that survives a restart."""

from __future__ import annotations

import contextlib
import io
import sqlite3
import time
from pathlib import Path
from typing import Any

from bot.app import build_runtime
from bot.cli import chat as cli_chat
from bot.console import chat
from bot.settings import Settings
from bot.turns.activity_handler import WELCOME_TEXT
from dialogs.main_dialog import HELP_TEXT
from models.fake import FakeChatModel


async def talk(settings: Settings, model: FakeChatModel, lines: str) -> str:
    runtime = build_runtime(settings, model=model)
    output = io.StringIO()
    try:
        await chat(runtime, input_stream=io.StringIO(lines), output=output)
    finally:
        await runtime.aclose()
    return output.getvalue()


async def test_chat_in_the_terminal(tmp_path: Path) -> None:
    settings = Settings(storage=f"sqlite:///{tmp_path}/state.db")
    transcript = await talk(settings, FakeChatModel(), "hello\n/help\n")
    assert f"bot> {WELCOME_TEXT}" in transcript
    assert "bot> fake: hello" in transcript
    assert HELP_TEXT.splitlines()[0] in transcript


async def test_history_survives_a_restart(tmp_path: Path) -> None:
    settings = Settings(storage=f"sqlite:///{tmp_path}/state.db")
    await talk(settings, FakeChatModel(), "tell me a joke\n")
    model = FakeChatModel()
    await talk(settings, model, "say it again\n/quit\nnot read\n")
    assert [m.content for m in model.prompts[0][1:]] == [
        "tell me a joke",
        "fake: tell me a joke",
        "say it again",
    ]
    assert len(model.prompts) == 1, "/quit ends the chat"


async def test_feedback_flow_shows_choices(tmp_path: Path) -> None:
    settings = Settings(storage=f"sqlite:///{tmp_path}/state.db")
    transcript = await talk(settings, FakeChatModel(), "/feedback\n")
    assert "bot> How were my answers? (1) Great, (2) OK, or (3) Poor" in transcript


class AfterIndexing(io.StringIO):
    """The user's lines, the first one typed once `database` holds a knowledge document (the
    console reads input in a thread: polling there does not stall the bot)."""

    def __init__(self, lines: str, database: Path) -> None:
        super().__init__(lines)
        self._database = database
        self._waited = False

    def readline(self, *args: Any) -> str:
        deadline = time.monotonic() + 30
        while not self._waited and time.monotonic() < deadline:
            with contextlib.suppress(sqlite3.OperationalError):
                with sqlite3.connect(self._database) as db:
                    count = db.execute("SELECT count(*) FROM knowledge_documents").fetchone()[0]
                if count:
                    self._waited = True
                    break
            time.sleep(0.05)
        return super().readline(*args)


async def test_botloom_chat_indexes_botloom_knowledge(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bikes.md").write_text(
        "# Bikes\n\nThe bike shed behind Building D opens at 06:30 on weekdays.\n", "utf-8"
    )
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/state.db",
        model="fake",
        embedding_model="hashing",
        knowledge=(str(docs),),
        knowledge_min_score=0.1,
        knowledge_answered_min_score=0.0,  # the bars are MiniLM's, not the hashing embedder's
    )
    output = io.StringIO()
    lines = AfterIndexing("When does the bike shed open?\n", tmp_path / "state.db")
    assert await cli_chat(settings, input_stream=lines, output=output) == 0
    transcript = output.getvalue()
    assert "06:30" in transcript and "Sources: [1] Bikes" in transcript, transcript

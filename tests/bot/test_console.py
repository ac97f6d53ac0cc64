"""`botloom chat`: the same bot in a terminal, with state that survives a restart."""

from __future__ import annotations

import io
from pathlib import Path

from bot.app import build_runtime
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
    await talk(settings, FakeChatModel(), "my name is Ada\n")
    model = FakeChatModel()
    await talk(settings, model, "say it again\n/quit\nnot read\n")
    assert [m.content for m in model.prompts[0][1:]] == [
        "my name is Ada",
        "fake: my name is Ada",
        "say it again",
    ]
    assert len(model.prompts) == 1, "/quit ends the chat"


async def test_feedback_flow_shows_choices(tmp_path: Path) -> None:
    settings = Settings(storage=f"sqlite:///{tmp_path}/state.db")
    transcript = await talk(settings, FakeChatModel(), "/feedback\n")
    assert "bot> How were my answers? (1) Great, (2) OK, or (3) Poor" in transcript

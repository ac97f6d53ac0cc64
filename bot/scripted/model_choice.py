"""Which model a run's scripts talk to: the fake, scripted replies, or the configured model."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from bot.scripted.replies import ScriptedChatModel
from bot.settings import Settings
from models import ChatModel
from models.api import close_resource
from models.fake import FakeChatModel


class ModelChoice(StrEnum):
    FAKE = "fake"  # FakeChatModel: replies "fake: <the user's message>"
    REPLIES = "replies"  # the replies listed beside each script (NAME.replies)
    REAL = "real"  # the model the settings configure (BOTLOOM_MODEL), loaded once per run


class ScriptModels:
    """Hands each script its model; `aclose` closes the real model if one was loaded.

    The fake and scripted models are new for every script, so no script sees another's prompts.
    """

    def __init__(self, choice: ModelChoice | str, settings: Settings) -> None:
        self.choice = ModelChoice(choice)
        self._settings = settings
        self._real: ChatModel | None = None

    def for_script(self, script: Path) -> ChatModel:
        if self.choice is ModelChoice.FAKE:
            return FakeChatModel()
        if self.choice is ModelChoice.REPLIES:
            return ScriptedChatModel.beside(script)
        if self._real is None:
            from bot.model_setup import (
                build_model,  # torch is imported only when a real model is used
            )

            self._real = build_model(self._settings)
        return self._real

    async def aclose(self) -> None:
        await close_resource(self._real)

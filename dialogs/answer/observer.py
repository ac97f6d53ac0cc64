"""What the answer's stages and the model's reply tell an observer: a hook the bot implements
(bot/observability/answers.py: spans, metrics, token usage), so dialogs stay free of it.

`PassiveObserver` does nothing: the chat dialog's default (the terminal, scripted tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Protocol

from botbuilder.core import TurnContext

from models import ChatMessage, GenerationParams


class AnswerObserver(Protocol):
    def stage(
        self, turn_context: TurnContext, name: str
    ) -> contextlib.AbstractContextManager[None]:
        """Around one stage's `prepare` ("memory", "knowledge", ...)."""
        ...

    def generation(
        self,
        turn_context: TurnContext,
        prompt: Sequence[ChatMessage],
        params: GenerationParams,
        pieces: AsyncIterator[str],
    ) -> AsyncIterator[str]:
        """The model's reply as it streams (the observer passes every piece on, unchanged)."""
        ...

    def answered(self, turn_context: TurnContext, *, passages: int, citations: int) -> None:
        """A reply was sent: how many knowledge passages its prompt had and how many it cited."""
        ...


class PassiveObserver:
    """Observes nothing."""

    @contextlib.contextmanager
    def stage(self, turn_context: TurnContext, name: str) -> Iterator[None]:
        yield

    def generation(
        self,
        turn_context: TurnContext,
        prompt: Sequence[ChatMessage],
        params: GenerationParams,
        pieces: AsyncIterator[str],
    ) -> AsyncIterator[str]:
        return pieces

    def answered(self, turn_context: TurnContext, *, passages: int, citations: int) -> None:
        return None

"""One turn's answer as stages: each may answer the message itself, add to the prompt, or pass.

`ChatDialog` runs its stages in order (answers from the user's memory, then passages from the
knowledge index); the first stage that sets `draft.answer` ends the turn with that answer, else
the model replies from the prompt the stages built (dialogs/answer/model_reply.py), and then every
stage gets `after_reply` (work that is not on the user's wait).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from botbuilder.core import TurnContext

from dialogs.knowledge.passages import Passage, Retriever
from models import ChatMessage


async def _nothing_shown(text: str) -> None:
    return None


@dataclass
class TurnDraft:
    """What the stages build up for one turn's answer."""

    text: str  # the user's message
    history: list[ChatMessage]  # the conversation's recent messages, oldest first
    budget_tokens: int  # what the prompt may hold besides the reply
    note: str = ""  # added after the message in the prompt's user turn
    context: list[str] = field(default_factory=list)  # system blocks, least important first
    passages: list[Passage] = field(default_factory=list)  # to ground the reply in
    sources: list[Retriever] = field(default_factory=list)  # searched before the index (files)
    answer: str | None = None  # an answer that needs no model: the turn ends with it
    # The documents are about the question's topic (a passage passed the retriever's relevance
    # bar) and none answers it: unless a later stage finds an answer, the bot says so.
    unanswered: bool = False
    cited: list[Passage] = field(default_factory=list)  # the passages the model's reply cites
    # Shows the user what the turn is doing ("Looking up …") where the channel streams.
    progress: Callable[[str], Awaitable[None]] = field(default=_nothing_shown, repr=False)


class AnswerStage(Protocol):
    async def prepare(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        """Answer (set `draft.answer`), add to the prompt, or do nothing."""
        ...

    async def after_reply(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        """After the model's reply was sent (not after an answer without the model)."""
        ...

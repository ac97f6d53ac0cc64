"""The knowledge stage of a turn's answer: the passages of the knowledge index the reply is
grounded in (with the previous user message for a follow-up that finds nothing alone), as many
as fit the budget for them."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence

from botbuilder.core import TurnContext

from dialogs.answer.stages import TurnDraft
from dialogs.knowledge.grounding import choose_passages
from dialogs.knowledge.passages import KnowledgeOptions, Passage, Retriever
from dialogs.knowledge.preferred import PreferredRetriever
from models import ChatMessage, ChatModel

logger = logging.getLogger(__name__)


class KnowledgeStage:
    """Adds the turn's passages to the draft; never answers by itself."""

    def __init__(
        self, retriever: Retriever | None, model: ChatModel, options: KnowledgeOptions
    ) -> None:
        self._retriever = retriever
        self._model = model
        self._options = options

    async def prepare(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        retriever = self._retriever
        if draft.sources:  # the conversation's files first, the index beside them
            retriever = PreferredRetriever(draft.sources, retriever)
        draft.passages = await find_passages(
            retriever, self._model, draft.history, draft.text, self._options
        )

    async def after_reply(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        return None


_REFERRING = frozenset(
    "it its it's this that these those they them their theirs he him his she her same".split()
)
_FOLLOW_UP_STARTS = ("and ", "also ", "what about ", "how about ")


def follow_up_query(history: Sequence[ChatMessage], text: str) -> str | None:
    """For a message that refers back ("and how long is its warranty?"): the previous user
    message and this one, so the search finds the same document; None for any other message
    or when there is no previous message."""
    lowered = text.lower().strip()
    words = set(re.findall(r"[\w']+", lowered))
    if not (_REFERRING & words) and not lowered.startswith(_FOLLOW_UP_STARTS):
        return None
    previous = next((m.content for m in reversed(history) if m.role == "user"), "")
    return f"{previous}\n{text}" if previous else None


async def find_passages(
    retriever: Retriever | None,
    model: ChatModel,
    history: Sequence[ChatMessage],
    text: str,
    options: KnowledgeOptions,
) -> list[Passage]:
    """The passages for a turn's `text` (with the previous message for a follow-up that finds
    nothing alone) that fit the budget; [] without a retriever or when it fails (logged)."""
    if retriever is None:
        return []
    try:
        found = await retriever.search(text, options.passages)
        follow_up = follow_up_query(history, text)
        if not found and follow_up is not None:
            found = await retriever.search(follow_up, options.passages)
    except Exception:
        logger.exception("knowledge retrieval failed")
        return []
    return await asyncio.to_thread(choose_passages, model, found, options)

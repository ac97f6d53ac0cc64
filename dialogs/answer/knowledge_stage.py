"""The knowledge stage of a turn's answer: the passages of the knowledge index the reply is
grounded in, as many as fit the budget for them.

With a `MeaningRanker` (the bot's default) the candidates of the searches and the passages the
previous answer cited are reranked by the meaning of their sentences; a follow-up ("and how heavy
is it?") is scored together with the previous question and answer. Without one, the retriever's
own order and threshold decide (with the previous user message for a follow-up that finds
nothing alone).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from botbuilder.core import TurnContext

from dialogs.answer.stages import TurnDraft
from dialogs.knowledge.cited import CitedPassages
from dialogs.knowledge.grounding import choose_passages
from dialogs.knowledge.meaning import CITED, MeaningRanker
from dialogs.knowledge.passages import KnowledgeOptions, Passage, Retriever
from dialogs.knowledge.preferred import PreferredRetriever
from models import ChatMessage, ChatModel

logger = logging.getLogger(__name__)

CANDIDATES = 8  # passages each search brings to the reranking
FOLLOW_UP_WORDS = 12  # a follow-up is a short message


class KnowledgeStage:
    """Adds the turn's passages to the draft and, after the reply, keeps the ones it cited for
    the next turn; never answers by itself."""

    def __init__(
        self,
        retriever: Retriever | None,
        model: ChatModel,
        options: KnowledgeOptions,
        *,
        ranker: MeaningRanker | None = None,
        cited: CitedPassages | None = None,
    ) -> None:
        self._retriever = retriever
        self._model = model
        self._options = options
        self._ranker = ranker
        self._cited = cited

    async def prepare(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        retriever = self._retriever
        if draft.sources:  # the conversation's files first, the index beside them
            retriever = PreferredRetriever(draft.sources, retriever)
        previous = await self._cited.get(turn_context) if self._cited else []
        found = await find(
            retriever,
            self._model,
            draft.history,
            draft.text,
            self._options,
            ranker=self._ranker,
            previous=previous,
        )
        draft.passages = found.passages
        draft.unanswered = found.unanswered(draft.text)

    async def after_reply(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        if self._cited is not None:
            await self._cited.set(turn_context, draft.cited)


# A follow-up points back with a pronoun or a determiner ("its warranty", "that form", "the
# other one"): a closed class of words, listed whole, not a list of topics. The retriever's own
# follow-up search (the previous user message with this one) runs for the pronouns alone, as it
# always has; scoring with the previous answer needs a short question (`is_follow_up`).
_POINTING = frozenset(
    "it its it's this that these those they them their theirs he him his she her same".split()
)
_REFERRING = _POINTING | {"other", "another", "one"}
_FOLLOW_UP_STARTS = ("and ", "also ", "what about ", "how about ")
# ... and asks something: small talk ("thanks, that's all") is no follow-up.
_QUESTION_STARTS = frozenset(
    "what what's which who whom whose when where why how how's is are was were can could do "
    "does did will would should may and also".split()
)


def asks(text: str) -> bool:
    """Whether `text` is a question ("is there a pension scheme?", "how do I claim travel")."""
    lowered = text.lower().strip()
    words = re.findall(r"[\w']+", lowered)
    return bool(words) and (lowered.endswith("?") or words[0] in _QUESTION_STARTS)


def is_follow_up(text: str) -> bool:
    """A short question that refers back ("and how long is its warranty?")."""
    lowered = text.lower().strip()
    words = re.findall(r"[\w']+", lowered)
    if not words or len(words) > FOLLOW_UP_WORDS:
        return False
    refers = bool(_REFERRING & set(words)) or lowered.startswith(_FOLLOW_UP_STARTS)
    asks = lowered.endswith("?") or words[0] in _QUESTION_STARTS
    return refers and asks


def _previous(history: Sequence[ChatMessage], role: str) -> str:
    return next((m.content for m in reversed(history) if m.role == role), "")


def follow_up_query(history: Sequence[ChatMessage], text: str) -> str | None:
    """For a message that refers back ("and how long is its warranty?"): the previous user
    message and this one, so the search finds the same document; None for any other message
    or when there is no previous message."""
    lowered = text.lower().strip()
    words = set(re.findall(r"[\w']+", lowered))
    if not (_POINTING & words) and not lowered.startswith(_FOLLOW_UP_STARTS):
        return None
    previous = _previous(history, "user")
    return f"{previous}\n{text}" if previous else None


def follow_up_context(history: Sequence[ChatMessage], text: str) -> str:
    """The previous question and answer a follow-up is scored with ("" for other messages)."""
    if not is_follow_up(text):
        return ""
    return "\n".join(p for p in (_previous(history, "user"), _previous(history, "assistant")) if p)


@dataclass(frozen=True)
class Found:
    passages: list[Passage]  # those the reply is grounded in
    on_topic: bool  # a candidate passed the retriever's relevance bar (answering or not)

    def unanswered(self, text: str) -> bool:
        """`text` asks something the documents are about and none of them answers."""
        return self.on_topic and not self.passages and asks(text)


async def find(
    retriever: Retriever | None,
    model: ChatModel,
    history: Sequence[ChatMessage],
    text: str,
    options: KnowledgeOptions,
    *,
    ranker: MeaningRanker | None = None,
    previous: Sequence[Passage] = (),
) -> Found:
    """The passages for a turn's `text` that fit the budget; [] without a retriever or when it
    fails (logged). `previous`: the passages the previous answer cited, candidates too.
    Without a ranker, the retriever's passages that pass its thresholds (those of the previous
    user message with this one for a follow-up that finds none alone); with one, the
    retriever's choice unless meaning clearly finds better (dialogs/knowledge/meaning.py)."""
    if retriever is None:
        return Found([], False)
    follow_up = follow_up_query(history, text)
    try:
        limit = CANDIDATES if ranker else options.passages
        searches = [await retriever.search(text, limit)]
        if follow_up is not None and (ranker or not any(p.passed for p in searches[0])):
            searches.append(await retriever.search(follow_up, limit))
        # The retriever's choice, as it has always been made: the first passage of its search,
        # where that passes its thresholds (else that of the follow-up search).
        choice = next((f[0] for f in searches if f and f[0].passed), None)
        if ranker is None:
            found = [p for p in searches[-1] if p.passed][: options.passages]
        else:
            candidates = [p for search in searches for p in search]
            previous = [replace(p, passed=False, found_by=CITED) for p in previous]
            context = follow_up_context(history, text)
            found = await ranker.rank(text, [*candidates, *previous], context, choice)
    except Exception:
        logger.exception("knowledge retrieval failed")
        return Found([], False)
    on_topic = any(p.passed for search in searches for p in search)
    return Found(await asyncio.to_thread(choose_passages, model, found, options), on_topic)

"""Grounding the reply in the user's documents: the retriever interface and the prompt step.

bot/ implements `Retriever` (hybrid lexical + dense search over the knowledge index) and passes
it to the chat dialog; dialogs never see how passages are found. The prompt step puts the best
passages before the user's question (numbered when there are several); which ones the reply
used is worked out afterwards (dialogs/citations.py), since small models rarely cite.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from models import ChatMessage, ChatModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk and where it comes from."""

    text: str
    title: str
    source: str  # a path or URL, for logs and `botloom knowledge search`
    document_id: str
    url: str = ""  # a link a reader can open ("" for a local file)
    heading: str = ""
    page: int | None = None
    score: float = 0.0  # cosine similarity to the query

    @property
    def location(self) -> str:
        """ "page 3", the heading, or both."""
        parts = [f"page {self.page}"] if self.page else []
        if self.heading:
            parts.append(self.heading)
        return ", ".join(parts)


class Retriever(Protocol):
    """The passages relevant to `query`, best first, at most `limit`; [] when nothing scores
    above the relevance threshold. May raise any exception: the dialog then answers without."""

    async def search(self, query: str, limit: int) -> list[Passage]: ...


@dataclass(frozen=True)
class KnowledgeOptions:
    passages: int = 1  # at most this many in the prompt (the 135M default does best with one)
    tokens: int = 600  # and at most this many prompt tokens for them


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


ONE_SOURCE = "Read this text and answer the question with the words of the text."
SOURCES = (
    "Read these texts and answer the question with their words; cite the text you used like [1]."
)


_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_CONTENT_WORD = re.compile(r"[a-z0-9]+(?:[-.:][a-z0-9]+)*")
_QUESTION_WORDS = frozenset(
    "a an the is are was were do does did of to in on for at by with and or how what which who "
    "when where why many much long there their its it i we you my our your can must be".split()
)


def focus(text: str, question: str, sentences: int = 2) -> str:
    """The (at most) `sentences` sentences of `text` that share most words with `question` (a word
    matches on its first five letters: warranty ~ warranties), in their order; the whole text
    when it is that short or the question shares nothing with it. A shared word counts less the
    more sentences have it (the product's name in every sentence picks none of them). A small
    model copies the right fact far more often from two sentences than from a whole chunk."""
    parts = _SENTENCE.split(" ".join(text.split()))
    if len(parts) <= sentences:
        return " ".join(parts)
    wanted = {w[:5] for w in _CONTENT_WORD.findall(question.lower()) if w not in _QUESTION_WORDS}
    shared = [wanted & {w[:5] for w in _CONTENT_WORD.findall(p.lower())} for p in parts]
    spread = {w: sum(1 for words in shared if w in words) for w in wanted}
    scores = [sum(1.0 / spread[w] for w in words) for words in shared]
    if not any(scores):
        return " ".join(parts)
    ranked = sorted(range(len(parts)), key=lambda i: (-scores[i], i))
    best = [i for i in ranked if scores[i] > 0][:sentences]
    return " ".join(parts[i] for i in sorted(best))


def shown_texts(passages: Sequence[Passage], question: str) -> list[str]:
    """What the prompt shows of each passage: one passage's sentences about the question, or
    several passages whole."""
    if len(passages) == 1:
        return [focus(passages[0].text, question)]
    return [" ".join(p.text.split()) for p in passages]


def sources_block(passages: Sequence[Passage], question: str = "") -> str:
    """The passages as the prompt shows them: one plain text (its sentences about the
    question), or numbered texts with titles. (Chosen on tests/knowledge/eval: the embedded
    135M model copies facts from one short plain "Text:" far more often than from numbered
    sources with a worked example.)"""
    texts = shown_texts(passages, question)
    if len(passages) == 1:
        return f"{ONE_SOURCE}\n\nText: {texts[0]}"
    lines = []
    for number, (passage, text) in enumerate(zip(passages, texts, strict=True), 1):
        where = f", {passage.location}" if passage.location else ""
        lines.append(f"Text [{number}] ({passage.title}{where}): {text}")
    return SOURCES + "\n\n" + "\n\n".join(lines)


def choose_passages(
    model: ChatModel, passages: Sequence[Passage], options: KnowledgeOptions
) -> list[Passage]:
    """The best passages whose sources block fits `options.tokens` (at least the first one)."""
    chosen: list[Passage] = []
    for passage in passages[: options.passages]:
        block = sources_block([*chosen, passage])
        if chosen and model.count_tokens([ChatMessage("user", block)]) > options.tokens:
            break
        chosen.append(passage)
    return chosen


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


def grounding_tokens(model: ChatModel, passages: Sequence[Passage]) -> int:
    """What grounding adds to a prompt: reserve it from the history's budget."""
    if not passages:
        return 0
    return model.count_tokens([ChatMessage("user", f"{sources_block(passages)}\n\nQuestion:")])


def grounded_prompt(
    prompt: Sequence[ChatMessage], passages: Sequence[Passage]
) -> list[ChatMessage]:
    """`prompt` (system, history..., user) with the passages put before the user's question,
    in the same message. No passages: the prompt unchanged."""
    if not passages or not prompt or prompt[-1].role != "user":
        return list(prompt)
    question = prompt[-1].content
    user = ChatMessage("user", f"{sources_block(passages, question)}\n\nQuestion: {question}")
    return [*prompt[:-1], user]

"""Grounding a reply in passages: what the prompt shows of them (the sentences about the question
for one passage, numbered texts for several), put before the user's question in the same message.

Which passages the reply used is worked out afterwards (dialogs/knowledge/citations.py), since
small models rarely cite; whether the reply says what they say, by dialogs/knowledge/guard.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dialogs.knowledge.passages import KnowledgeOptions, Passage
from dialogs.text import STOPWORDS, stem
from dialogs.text import sentences as split_sentences
from models import ChatMessage, ChatModel

ONE_SOURCE = "Read this text and answer the question with the words of the text."
SOURCES = (
    "Read these texts and answer the question with their words; cite the text you used like [1]."
)


_CONTENT_WORD = re.compile(r"[a-z0-9]+(?:[-.:][a-z0-9]+)*")


def focus(text: str, question: str, sentences: int = 2) -> str:
    """The (at most) `sentences` sentences of `text` that share most words with `question` (a word
    matches on its first five letters: warranty ~ warranties), in their order; the whole text
    when it is that short or the question shares nothing with it. A shared word counts less the
    more sentences have it (the product's name in every sentence picks none of them). A small
    model copies the right fact far more often from two sentences than from a whole chunk."""
    parts = split_sentences(text)
    return " ".join(parts[i] for i in focus_indices(parts, question, sentences))


def focus_indices(parts: Sequence[str], question: str, sentences: int = 2) -> list[int]:
    """`focus`'s choice among the sentences `parts`: their indices, in order."""
    if len(parts) <= sentences:
        return list(range(len(parts)))
    scores = word_scores(parts, question)
    if not any(scores):
        return list(range(len(parts)))
    ranked = sorted(range(len(parts)), key=lambda i: (-scores[i], i))
    return sorted([i for i in ranked if scores[i] > 0][:sentences])


def word_scores(parts: Sequence[str], question: str) -> list[float]:
    """For each sentence, the words it shares with `question` (matched on their stems), each
    counting less the more sentences have it."""
    wanted = {stem(w) for w in _CONTENT_WORD.findall(question.lower()) if w not in STOPWORDS}
    shared = [wanted & {stem(w) for w in _CONTENT_WORD.findall(p.lower())} for p in parts]
    spread = {w: sum(1 for words in shared if w in words) for w in wanted}
    return [sum(1.0 / spread[w] for w in words) for words in shared]


def shown_texts(passages: Sequence[Passage], question: str) -> list[str]:
    """What the prompt shows of each passage: one passage's sentences about the question (chosen
    by meaning where the passage has them, dialogs/knowledge/meaning.py), or several passages
    whole."""
    if len(passages) == 1:
        return [passages[0].focus or focus(passages[0].text, question)]
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

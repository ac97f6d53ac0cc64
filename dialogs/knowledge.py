"""Grounding the reply in the user's documents: the retriever interface and the prompt step.

bot/ implements `Retriever` (hybrid lexical + dense search over the knowledge index) and passes
it to the chat dialog; dialogs never see how passages are found. The prompt step adds the best
passages, numbered, to the system prompt, with a short worked example so that even the small
embedded model answers from them and cites them as [1], [2]...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from models import ChatMessage, ChatModel


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
    passages: int = 3  # at most this many in the prompt
    tokens: int = 600  # and at most this many prompt tokens for them


def knowledge_query(history: Sequence[ChatMessage], text: str) -> str:
    """The search query: the message, plus the previous user message when there is one, so a
    follow-up ("and how long is its warranty?") finds the same document."""
    previous = next((m.content for m in reversed(history) if m.role == "user"), "")
    return f"{previous}\n{text}" if previous else text


INSTRUCTIONS = (
    "When sources are given, answer only from them, in one or two sentences, and cite the "
    "source you used like [1]. If they do not answer the question, say you don't know."
)
EXAMPLE = (  # a worked example: small models copy its shape (it names no real document)
    ChatMessage(
        "user",
        "Sources:\n[1] Zeta lamp manual (Battery): The Zeta-9 lamp runs for 11 hours on a full "
        "charge. It charges in 2 hours.\n[2] Zeta price list: The Zeta-9 costs 40 euros.\n\n"
        "Question: How long does the Zeta-9 run on a full charge?",
    ),
    ChatMessage("assistant", "The Zeta-9 runs for 11 hours on a full charge [1]."),
)


def sources_block(passages: Sequence[Passage]) -> str:
    lines = []
    for number, passage in enumerate(passages, 1):
        where = f" ({passage.location})" if passage.location else ""
        lines.append(f"[{number}] {passage.title}{where}: {' '.join(passage.text.split())}")
    return "Sources:\n" + "\n".join(lines)


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
    added = [ChatMessage("user", f"{INSTRUCTIONS}\n{sources_block(passages)}\nQuestion:")]
    return model.count_tokens([*EXAMPLE, *added])


def grounded_prompt(
    prompt: Sequence[ChatMessage], passages: Sequence[Passage]
) -> list[ChatMessage]:
    """`prompt` (system, history..., user) with the instructions added to the system message,
    the worked example before the history, and the numbered passages before the user's
    question. No passages: the prompt unchanged."""
    if not passages or not prompt or prompt[-1].role != "user":
        return list(prompt)
    question = prompt[-1].content
    head = list(prompt[:-1])
    system = [m for m in head[:1] if m.role == "system"]
    history = head[len(system) :]
    system_text = f"{system[0].content}\n\n{INSTRUCTIONS}" if system else INSTRUCTIONS
    user = ChatMessage("user", f"{sources_block(passages)}\n\nQuestion: {question}")
    return [ChatMessage("system", system_text), *EXAMPLE, *history, user]

"""Passages from the knowledge index: what one is, the retriever interface bot/ implements, and
how many the prompt takes.

bot/ implements `Retriever` (hybrid lexical + dense search over the knowledge index) and passes
it to the chat dialog; dialogs never see how passages are found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


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
    score: float = 0.0  # cosine similarity of the whole chunk to the query
    found_by: str = ""  # "words", "meaning" or "words+meaning": which search found it
    sentence_score: float | None = (
        None  # its best sentence's similarity (dialogs/knowledge/meaning)
    )
    focus: str = ""  # its sentences about the question, chosen by meaning ("": by words)
    passed: bool = True  # passes the retriever's chunk thresholds (its relevance bar)
    attached: bool = False  # from a file the user attached to this conversation
    # Its sentences' vectors as the index keeps them (meaning.sentence_texts order; None: not
    # kept, embedded when ranked).
    sentence_vectors: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def location(self) -> str:
        """ "page 3", the heading, or both."""
        parts = [f"page {self.page}"] if self.page else []
        if self.heading:
            parts.append(self.heading)
        return ", ".join(parts)


class Retriever(Protocol):
    """The candidate passages for `query`, best first, at most `limit`, each with whether it
    passes the retriever's relevance threshold (`passed`); [] when nothing is a candidate. The
    dialog uses the passed ones, and the others whose sentences are close enough in meaning
    (dialogs/knowledge/meaning.py). May raise any exception: the dialog then answers without."""

    async def search(self, query: str, limit: int) -> list[Passage]: ...


@dataclass(frozen=True)
class KnowledgeOptions:
    passages: int = 1  # at most this many in the prompt (the 135M default does best with one)
    tokens: int = 600  # and at most this many prompt tokens for them
    # Answer from documents with their own sentences about the question (the passage's focus,
    # cited) instead of the model's words: for a model too small to restate a fact faithfully.
    quote: bool = False

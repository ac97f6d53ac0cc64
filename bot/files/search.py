"""Searching a conversation's files the way the knowledge index is searched: its chunks, held
in memory for one turn, answer the `candidates` call of `bot.knowledge.retriever.HybridRetriever`
(meaning: exact cosine similarity; words: the query's terms, rarer terms counting more), so the
same fusion and relevance thresholds decide."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.storage.knowledge import Candidates, StoredChunk, exact_candidates, query_terms


@dataclass(frozen=True)
class FileChunks:
    """The chunks of a conversation's files (ids 0..n-1) and their unit vectors (n, dimension)."""

    chunks: Sequence[StoredChunk]
    vectors: np.ndarray

    async def has_chunks(self) -> bool:
        return bool(self.chunks)

    async def candidates(self, query: str, vector: np.ndarray, limit: int) -> Candidates:
        lexical = self.lexical_ranking(query, limit)
        ids = np.arange(len(self.chunks), dtype=np.int64)
        if self.vectors.shape[1:] != vector.shape:  # embedded by another model: words alone
            return Candidates([], lexical, {}, {c.id: c for c in self.chunks})
        dense, similarity = exact_candidates(ids, self.vectors, vector, lexical, limit)
        wanted = {item for item, _ in dense} | {item for item, _ in lexical}
        return Candidates(dense, lexical, similarity, {i: self.chunks[i] for i in wanted})

    def lexical_ranking(self, query: str, limit: int) -> list[tuple[int, float]]:
        """Chunks holding the query's terms (a code as a phrase), by the sum of the terms'
        inverse document frequencies."""
        terms = [r"\b" + r"\W+".join(map(re.escape, words)) + r"\b" for words in query_terms(query)]
        if not terms:
            return []
        texts = [f"{c.title} {c.heading} {c.text}".lower() for c in self.chunks]
        present = [[bool(re.search(term, text)) for term in terms] for text in texts]
        total = len(texts)
        weights = [
            math.log(1 + total / (1 + sum(row[t] for row in present))) for t in range(len(terms))
        ]
        scored = [
            (index, sum(w for w, hit in zip(weights, row, strict=True) if hit))
            for index, row in enumerate(present)
        ]
        scored = [(index, score) for index, score in scored if score > 0]
        scored.sort(key=lambda pair: (-pair[1], pair[0]))
        return scored[:limit]

"""Hybrid retrieval: words (FTS5 / PostgreSQL full-text) and meaning (embeddings), fused.

Both searches return their best `candidates` (in one store call, with the candidates'
similarities and rows); reciprocal rank fusion (score = Σ 1 / (k + rank))
orders the union, so a product code found only by words ranks beside a paraphrase found only by
meaning. Relevance is then judged on the absolute cosine similarity of each candidate to the
query (rank fusion says nothing about it): a passage passes when its similarity reaches
`min_score`, or `lexical_min_score` when the words search found it too (calibrated on
tests/knowledge/eval: questions about the documents score well above, small talk and general
questions below). Candidates down to the looser `candidate_*` bars are returned too, marked as not
passed: the dialog uses one of them only when its sentences are close enough in meaning
(dialogs/knowledge/meaning.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.storage.knowledge import KnowledgeStore, sentence_matrix
from dialogs.knowledge.passages import Passage
from models.embeddings import EmbeddingWorker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalOptions:
    # bot/settings.py's calibrated defaults (README, "Knowledge"); the app passes its settings.
    min_score: float = 0.27
    lexical_min_score: float = 0.23
    candidate_min_score: float = 0.15  # returned, not passed, down to these
    candidate_lexical_min_score: float = 0.1
    candidates: int = 20
    rrf_k: int = 60


def reciprocal_rank_fusion(rankings: list[list[int]], k: int) -> list[int]:
    """Ids ordered by Σ 1 / (k + rank) over the rankings they appear in (rank from 1)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda item: (-scores[item], item))


class HybridRetriever:
    """The `dialogs.knowledge.Retriever` over a knowledge store. An empty index answers []
    without loading the embedding model."""

    def __init__(
        self,
        store: KnowledgeStore,
        embedder: EmbeddingWorker,
        options: RetrievalOptions | None = None,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._options = options or RetrievalOptions()

    async def search(self, query: str, limit: int) -> list[Passage]:
        scored = await self.scored(query, limit)
        return [p for p, candidate in scored if candidate]

    async def scored(self, query: str, limit: int) -> list[tuple[Passage, bool]]:
        """The fused top `limit` passages (`passed`: whether each passes the threshold), each
        with whether it is a candidate at all (what `botloom knowledge search` prints)."""
        options = self._options
        if not query.strip() or not await self._store.has_chunks():
            return []
        vector = (await self._embedder.embed([query]))[0]
        found = await self._store.candidates(query, vector, options.candidates)
        fused = reciprocal_rank_fusion(
            [[i for i, _ in found.dense], [i for i, _ in found.lexical]], options.rrf_k
        )[:limit]
        found_by_words = {i for i, _ in found.lexical}
        found_by_meaning = {i for i, _ in found.dense}
        results = []
        for item in fused:
            chunk = found.chunks.get(item)
            if chunk is None:  # removed between the searches
                continue
            score = found.similarity.get(item, 0.0)
            words = item in found_by_words
            bar = options.lexical_min_score if words else options.min_score
            loose = options.candidate_lexical_min_score if words else options.candidate_min_score
            searches = [
                name
                for name, ids in (("words", found_by_words), ("meaning", found_by_meaning))
                if item in ids
            ]
            passage = Passage(
                text=chunk.text,
                title=chunk.title,
                source=chunk.source,
                document_id=chunk.document_id,
                url=chunk.url,
                heading=chunk.heading,
                page=chunk.page,
                score=score,
                found_by="+".join(searches),
                passed=score >= bar,
                sentence_vectors=sentence_matrix(chunk.sentences, vector.shape[0]),
            )
            results.append((passage, score >= min(bar, loose)))
        return results

"""The default embedding model, all-MiniLM-L6-v2 from its wheel: loads offline and finds the
right document for paraphrased questions (slow: it loads the real model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.knowledge.ingest import Ingestion
from bot.knowledge.retriever import HybridRetriever, RetrievalOptions
from bot.settings import Settings
from bot.storage.sqlite.knowledge import SqliteKnowledgeStore
from dialogs.knowledge.meaning import MeaningOptions, MeaningRanker
from models.embeddings import EmbeddingWorker, HFEmbeddingModel
from tests.knowledge.conftest import EVAL_DOCS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm() -> HFEmbeddingModel:
    return HFEmbeddingModel()


def test_vectors_are_unit_length_and_meaningful(minilm: HFEmbeddingModel) -> None:
    vectors = minilm.embed(["A spider has eight legs.", "Spiders are eight-legged.", "Tax law."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


async def test_paraphrases_find_their_document(tmp_path: Path, minilm: HFEmbeddingModel) -> None:
    store = SqliteKnowledgeStore(tmp_path / "state.db")
    worker = EmbeddingWorker(minilm)
    try:
        await Ingestion(store, worker).add([EVAL_DOCS])
        defaults = Settings()  # the thresholds the app uses
        options = RetrievalOptions(
            defaults.knowledge_min_score, defaults.knowledge_lexical_min_score
        )
        retriever = HybridRetriever(store, worker, options)
        found = await retriever.search("When do I get my laptop swapped for a new one?", 1)
        assert found and found[0].heading == "Equipment"
        found = await retriever.search("what to do if my phone gets stolen", 1)
        assert found and found[0].title == "Kestrelmoor security policy"
        ranker = MeaningRanker(
            worker,
            MeaningOptions(
                defaults.knowledge_sentence_min_score,
                answered_min_score=defaults.knowledge_answered_min_score,
            ),
        )
        spider = "How many legs does a spider have?"
        assert await ranker.rank(spider, await retriever.search(spider, 8)) == []
        # On the handbook's topic, not answered by it: its holiday chunk passes the retriever's
        # bar, and no sentence of it is close enough to answer.
        flat = "Can I take my holiday in the company flat in Spain?"
        candidates = await retriever.search(flat, 8)
        assert candidates and candidates[0].passed and candidates[0].heading == "Holidays"
        assert await ranker.rank(flat, candidates, choice=candidates[0]) == []
        # A paraphrase: no content word of the answer's, the answer sentence chosen by meaning.
        question = "How much time off do I get each year?"
        found = await ranker.rank(question, await retriever.search(question, 8))
        assert found and found[0].heading == "Holidays" and "27 days" in found[0].focus
    finally:
        worker.close()
        await store.close()

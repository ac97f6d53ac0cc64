from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.knowledge.ingest import Ingestion, IngestLimits
from bot.storage.sqlite.knowledge import SqliteKnowledgeStore
from models.embeddings import EmbeddingWorker, HashingEmbeddingModel

EVAL = Path(__file__).parent / "eval"
EVAL_DOCS = EVAL / "docs"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteKnowledgeStore]:
    knowledge = SqliteKnowledgeStore(tmp_path / "state.db")
    await knowledge.open()
    yield knowledge
    await knowledge.close()


@pytest.fixture
def hashing() -> HashingEmbeddingModel:
    return HashingEmbeddingModel()


@pytest.fixture
def embedder(hashing: HashingEmbeddingModel) -> EmbeddingWorker:
    worker = EmbeddingWorker(hashing)
    yield worker
    worker.close()


@pytest.fixture
def lines() -> list[str]:
    """What ingestion reports (skipped files, progress)."""
    return []


@pytest.fixture
def ingestion(
    store: SqliteKnowledgeStore, embedder: EmbeddingWorker, lines: list[str]
) -> Ingestion:
    return Ingestion(store, embedder, limits=IngestLimits(), progress=lines.append)

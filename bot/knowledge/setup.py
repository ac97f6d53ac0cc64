"""Knowledge wiring: the index store, the embedding model and the retriever from settings, and
the indexing of BOTLOOM_KNOWLEDGE while the bot starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bot.knowledge.ingest import MB, Ingestion, IngestLimits, Progress
from bot.knowledge.retriever import HybridRetriever, RetrievalOptions
from bot.settings import Settings
from bot.storage import StorageURLError, create_backend
from bot.storage.knowledge import KnowledgeStore
from dialogs.knowledge.meaning import MeaningOptions, MeaningRanker
from dialogs.knowledge.passages import KnowledgeOptions
from models.embeddings import EmbeddingModel, EmbeddingWorker, HashingEmbeddingModel

logger = logging.getLogger(__name__)

HASHING_SPEC = "hashing"  # BOTLOOM_EMBEDDING_MODEL=hashing: the deterministic test embedder
FALLBACK_STORE = "sqlite:///data/knowledge.db"  # beside Redis state


def knowledge_store_url(settings: Settings) -> str:
    """BOTLOOM_KNOWLEDGE_STORE, else the state's own SQLite file or PostgreSQL database; with
    memory state an in-memory index; with Redis state data/knowledge.db."""
    if settings.knowledge_store:
        return settings.knowledge_store
    scheme = settings.storage.partition("://")[0]
    if scheme in ("sqlite", "postgresql", "postgres"):
        return settings.storage
    if scheme == "memory":
        return "sqlite:///:memory:"
    return FALLBACK_STORE


def knowledge_store(url: str, *, namespace: str = "botloom") -> KnowledgeStore:
    """The index in the backend a URL names (bot.storage.create_backend): sqlite:///path or
    postgresql://… (ValueError otherwise). Nothing connects until it is opened or used."""
    try:
        return create_backend(url, namespace=namespace).knowledge_store()
    except StorageURLError:
        raise ValueError(
            "BOTLOOM_KNOWLEDGE_STORE must be sqlite:///path.db or postgresql://…"
        ) from None


def create_embedding_model(spec: str) -> EmbeddingModel:
    if spec == HASHING_SPEC:
        return HashingEmbeddingModel()
    from models.embeddings import HFEmbeddingModel  # torch is imported on first use only

    return HFEmbeddingModel(spec)


@dataclass
class Knowledge:
    """The index, its embedder (on its own thread) and the retriever the chat dialog uses."""

    store: KnowledgeStore
    embedder: EmbeddingWorker
    retriever: HybridRetriever
    limits: IngestLimits
    prompt: KnowledgeOptions
    ranker: MeaningRanker  # reranks the retriever's candidates by their sentences' meaning

    def ingestion(self, progress: Progress | None = None) -> Ingestion:
        return Ingestion(self.store, self.embedder, limits=self.limits, progress=progress)

    async def close(self) -> None:
        self.embedder.close()
        await self.store.close()


def build_knowledge(
    settings: Settings,
    *,
    embedding_model: EmbeddingModel | None = None,
    store: KnowledgeStore | None = None,
) -> Knowledge:
    """Nothing connects or loads here: the store opens on first use, the model on first embed."""
    if store is None:
        store = knowledge_store(knowledge_store_url(settings), namespace=settings.storage_namespace)
    worker = EmbeddingWorker(embedding_model or create_embedding_model(settings.embedding_model))
    options = RetrievalOptions(
        min_score=settings.knowledge_min_score,
        lexical_min_score=settings.knowledge_lexical_min_score,
    )
    limits = IngestLimits(
        max_file_bytes=int(settings.knowledge_max_file_mb * MB),
        max_unpacked_bytes=int(settings.knowledge_max_unpacked_mb * MB),
        parse_timeout_s=settings.knowledge_parse_timeout_s,
        parse_memory_bytes=int(settings.knowledge_parse_memory_mb * MB),
    )
    prompt = KnowledgeOptions(settings.knowledge_passages, settings.knowledge_tokens)
    ranker = MeaningRanker(
        worker,
        MeaningOptions(
            min_score=settings.knowledge_sentence_min_score,
            answered_min_score=settings.knowledge_answered_min_score,
            answered_chunk_score=settings.knowledge_answered_chunk_score,
        ),
    )
    retriever = HybridRetriever(store, worker, options)
    return Knowledge(store, worker, retriever, limits, prompt, ranker)


@contextlib.asynccontextmanager
async def indexing(knowledge: Knowledge, roots: tuple[str, ...]) -> AsyncIterator[None]:
    """Index `roots` (BOTLOOM_KNOWLEDGE) in the background while the body runs (replies use what
    is indexed so far); the indexing stops when it ends."""

    async def run() -> None:
        try:
            report = await knowledge.ingestion().sync([Path(root) for root in roots])
            logger.info("knowledge: BOTLOOM_KNOWLEDGE indexed: %s", report.summary())
        except Exception:
            logger.exception("knowledge: indexing BOTLOOM_KNOWLEDGE failed")

    task = asyncio.create_task(run()) if roots else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def indexing_at_start(
    knowledge: Knowledge, roots: tuple[str, ...]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that indexes `roots` in the background while the bot serves."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async with indexing(knowledge, roots):
            yield

    return context

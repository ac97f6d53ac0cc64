"""`dialogs.files.ConversationFiles` for the bot: the turn's files are fetched (bot/files/fetch.py),
read by the knowledge readers in their worker process (the same bounds as the index), chunked,
embedded by the knowledge embedder and added to the conversation's collection in the bot's
storage (bot/files/collection.py); the conversation's questions search that collection with the
knowledge index's hybrid retriever."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

import numpy as np
from botbuilder.core import Storage, TurnContext

from bot.channels.streaming import StreamOptions
from bot.files.attachments import KINDS, FileRef, file_attachments
from bot.files.collection import CollectionLimits, FileCollections, NewFile, collection_key
from bot.files.fetch import FetchLimits, FetchRefused, fetch, may_fetch
from bot.files.progress import Progress
from bot.knowledge.ingest import IngestLimits
from bot.knowledge.parsing import DocumentParser, ParsedChunks, ParseJob
from bot.knowledge.readers import READERS, ReadLimits, UnreadableDocument
from bot.knowledge.retriever import HybridRetriever, RetrievalOptions
from dialogs.files import Acknowledge, FilesReceived, ReadFile, Refusal, RefusedFile
from dialogs.knowledge.passages import Passage
from models.embeddings import EmbeddingWorker

logger = logging.getLogger(__name__)
MB = 1024 * 1024


@dataclass(frozen=True)
class FilesConfig:
    fetch: FetchLimits
    collection: CollectionLimits
    read: IngestLimits  # the knowledge index's bounds on reading one document
    retrieval: RetrievalOptions
    stream: StreamOptions


class ChatFiles:
    """The files users attach, per conversation, in `storage`."""

    kinds = KINDS

    def __init__(self, storage: Storage, embedder: EmbeddingWorker, config: FilesConfig) -> None:
        self._collections = FileCollections(storage, config.collection)
        self._embedder = embedder
        self._config = config
        self.limit_mb = config.fetch.max_bytes / MB

    def attached(self, turn_context: TurnContext) -> bool:
        return bool(file_attachments(turn_context.activity))

    async def receive(self, turn_context: TurnContext, acknowledge: Acknowledge) -> FilesReceived:
        activity = turn_context.activity
        key = _key(turn_context)
        received = FilesReceived()
        wanted = []
        for ref in file_attachments(activity):
            if ref.refusal is None and not may_fetch(
                ref.url,
                activity.service_url or "",
                activity.channel_id or "",
                self._config.fetch.allowed,
            ):
                ref = FileRef(ref.name, ref.url, refusal=Refusal.NOT_ALLOWED)
            if ref.refusal is not None:
                logger.info("files: refused %s (%s)", ref.name, ref.refusal.value)
                received.refused.append(RefusedFile(ref.name, ref.refusal))
            else:
                wanted.append(ref)
        progress = Progress(turn_context, self._config.stream)
        if wanted:
            await progress.reading([ref.name for ref in wanted])
        for ref in wanted:
            try:
                received.read.append(await self._read(key, ref))
            except FetchRefused as refused:
                logger.info("files: %s not fetched: %s", ref.name, refused)
                received.refused.append(RefusedFile(ref.name, refused.refusal))
            except UnreadableDocument as error:
                logger.info("files: %s unreadable: %s", ref.name, error)
                received.refused.append(RefusedFile(ref.name, Refusal.UNREADABLE, str(error)))
            except Exception:  # nothing was kept (one write, at the end): the user is told
                logger.exception("files: reading %s failed", ref.name)
                received.refused.append(RefusedFile(ref.name, Refusal.UNREADABLE))
        await progress.done(acknowledge(received))
        return received

    async def _read(self, key: str, ref: FileRef) -> ReadFile:
        """Fetch, parse, embed and keep one file (kept only once all of it is done)."""
        data = await fetch(ref.url, self._config.fetch)
        parsed = await self._parse(ref, data)
        most = self._config.collection.max_chunks  # embedding is the slow part: never more
        if len(parsed.chunks) > most:
            logger.info("files: %s: only its first %d chunks are kept", ref.name, most)
            parsed = ParsedChunks(parsed.title, parsed.chunks[:most])
        titled = [
            f"{ref.name}{' — ' + c.heading if c.heading else ''}\n{c.text}" for c in parsed.chunks
        ]
        vectors = _unit(await self._embedder.embed(titled))
        pages = max((c.page or 0 for c in parsed.chunks), default=0) or None
        texts = [(c.text, c.heading, c.page) for c in parsed.chunks]
        await self._collections.add(
            key, NewFile(ref.name, pages, texts, vectors, self._embedder.model.name)
        )
        logger.info("files: %s read: %d chunks", ref.name, len(texts))
        return ReadFile(ref.name, pages, len(texts))

    async def _parse(self, ref: FileRef, data: bytes) -> ParsedChunks:
        limits = self._config.read
        parser = DocumentParser(limits.parse_timeout_s, limits.parse_memory_bytes)
        try:
            parsed = await parser.parse(
                ParseJob(
                    READERS[ref.extension],
                    data,
                    PurePosixPath(ref.name).stem,
                    ReadLimits(limits.max_unpacked_bytes),
                    limits.max_tokens,
                    limits.overlap_tokens,
                )
            )
        finally:
            parser.close()
        if not parsed.chunks:
            raise UnreadableDocument("no text in it")
        return parsed

    def retriever(self, turn_context: TurnContext) -> ConversationRetriever:
        return ConversationRetriever(self, _key(turn_context))

    async def search(self, key: str, query: str, limit: int) -> list[Passage]:
        chunks = await self._collections.chunks(key)
        if not chunks.chunks:
            return []
        retriever = HybridRetriever(chunks, self._embedder, self._config.retrieval)  # type: ignore[arg-type]
        return [replace(p, attached=True) for p in await retriever.search(query, limit)]

    async def forget(self, turn_context: TurnContext) -> int:
        return await self._collections.forget(_key(turn_context))

    async def sweep(self) -> int:
        """Drop expired files of conversations that did not come back (FileCollections.sweep)."""
        return await self._collections.sweep()


class ConversationRetriever:
    """The `Retriever` over one conversation's files."""

    def __init__(self, files: ChatFiles, key: str) -> None:
        self._files = files
        self._key = key

    async def search(self, query: str, limit: int) -> list[Passage]:
        return await self._files.search(self._key, query, limit)


def _key(turn_context: TurnContext) -> str:
    activity = turn_context.activity
    conversation = activity.conversation.id if activity.conversation else ""
    return collection_key(activity.channel_id or "", conversation or "")


def _unit(vectors: np.ndarray) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)

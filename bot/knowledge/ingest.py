"""Ingestion: files and folders in, documents in the knowledge index out.

Each file is read, chunked, embedded and written as one transaction, so a failure half-way (or a
crash) leaves the previous version of that document searchable. A file whose bytes (SHA-256)
and embedding model are unchanged is skipped without embedding; a bad file (unreadable, binary,
empty, too large) is skipped with one line naming it and why, and the rest goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.knowledge.chunking import chunk_sections
from bot.knowledge.readers import READERS, UnreadableDocument, read_document
from bot.storage.knowledge import ChunkRecord, DocumentRecord, KnowledgeStore
from models.embeddings import EmbeddingWorker

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
MB = 1024 * 1024


@dataclass(frozen=True)
class IngestLimits:
    max_file_bytes: int = 50 * 1024 * 1024
    max_tokens: int = 180  # per chunk
    overlap_tokens: int = 30
    progress_every_s: float = 5.0  # how often a long ingestion reports how far it is


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0  # chunks embedded and written
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.chunks / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.removed} removed, {len(self.skipped)} skipped; {self.chunks} chunks in "
            f"{self.seconds:.1f} s ({rate:.1f} chunks/s)"
        )


def document_id(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest()[:12]


def iter_files(paths: Iterable[Path]) -> Iterator[tuple[Path, bool]]:
    """(file, named) for each file named or found in a folder (sorted, hidden names and symlinked
    folders left out); `named` is True for a file given by name."""
    for path in paths:
        if path.is_dir():
            for root, folders, files in os.walk(path):
                folders[:] = sorted(f for f in folders if not f.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(root) / name, False
        else:
            yield path, True


class Ingestion:
    """Writes documents into `store`, embedding with `embedder`. `progress` gets one line per
    skipped file and a progress line every `limits.progress_every_s` (print or a logger)."""

    def __init__(
        self,
        store: KnowledgeStore,
        embedder: EmbeddingWorker,
        *,
        limits: IngestLimits | None = None,
        progress: Progress | None = None,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._limits = limits or IngestLimits()
        self._progress = progress or logger.info

    async def add(self, paths: Sequence[Path], report: IngestReport | None = None) -> IngestReport:
        """Index every supported file under `paths`. Files in folders with an extension no reader
        handles are left out silently; a named one is reported as skipped."""
        report = report if report is not None else IngestReport()
        started = time.monotonic()
        last_report = started
        done = 0
        for path, named in iter_files(p.expanduser().resolve() for p in paths):
            if path.suffix.lower() not in READERS and not named:
                continue
            await self._add_file(path, report)
            done += 1
            now = time.monotonic()
            if now - last_report >= self._limits.progress_every_s:
                last_report = now
                self._progress(f"knowledge: {done} files so far; {report.summary()}")
            report.seconds = now - started
        report.seconds = time.monotonic() - started
        return report

    async def sync(self, roots: Sequence[Path]) -> IngestReport:
        """`add(roots)`, then remove documents under these roots whose files are gone (what
        BOTLOOM_KNOWLEDGE does when the bot starts)."""
        resolved = [root.expanduser().resolve() for root in roots]
        report = IngestReport()
        for root in resolved:
            if not root.exists():
                report.skipped.append((str(root), "no such file or folder"))
                self._progress(f"knowledge: skipped {root}: no such file or folder")
        await self.add([root for root in resolved if root.exists()], report)
        for document in await self._store.documents():
            source = Path(document.source)
            inside = any(source == root or root in source.parents for root in resolved)
            if inside and not await asyncio.to_thread(source.is_file):
                await self._store.remove(document.id)
                report.removed += 1
        return report

    async def _add_file(self, path: Path, report: IngestReport) -> None:
        source = str(path)
        try:
            record, chunks = await asyncio.to_thread(self._prepare, path)
        except (UnreadableDocument, OSError) as error:
            why = str(error) if isinstance(error, UnreadableDocument) else _os_reason(error)
            report.skipped.append((source, why))
            self._progress(f"knowledge: skipped {source}: {why}")
            return
        existing = await self._store.document(source)
        if (
            existing is not None
            and existing.sha256 == record.sha256
            and existing.model == record.model
        ):
            report.unchanged += 1
            return
        texts = [_embedding_text(record.title, chunk) for chunk in chunks]
        vectors = await self._embedder.embed(texts)
        await self._store.replace_document(record, chunks, vectors)
        report.chunks += len(chunks)
        if existing is None:
            report.added += 1
        else:
            report.updated += 1

    def _prepare(self, path: Path) -> tuple[DocumentRecord, list[ChunkRecord]]:
        """Read and chunk one file (on a worker thread: PDF parsing is slow)."""
        size = path.stat().st_size
        if size > self._limits.max_file_bytes:
            raise UnreadableDocument(
                f"{size / MB:.0f} MB is over the {self._limits.max_file_bytes / MB:.0f} MB "
                "limit (BOTLOOM_KNOWLEDGE_MAX_FILE_MB)"
            )
        if size == 0:
            raise UnreadableDocument("empty file")
        data = path.read_bytes()
        parsed = read_document(path, data)
        chunks = chunk_sections(
            parsed.sections,
            max_tokens=self._limits.max_tokens,
            overlap_tokens=self._limits.overlap_tokens,
        )
        records = [ChunkRecord(c.text, c.heading, c.page, c.ordinal) for c in chunks]
        source = str(path)
        record = DocumentRecord(
            id=document_id(source),
            source=source,
            title=parsed.title,
            url="",
            sha256=hashlib.sha256(data).hexdigest(),
            model=self._embedder.model.name,
        )
        return record, records


def _embedding_text(title: str, chunk: ChunkRecord) -> str:
    """What is embedded: the chunk under its document title and heading, for context."""
    heading = f" — {chunk.heading}" if chunk.heading else ""
    return f"{title}{heading}\n{chunk.text}"


def _os_reason(error: OSError) -> str:
    return error.strerror or type(error).__name__

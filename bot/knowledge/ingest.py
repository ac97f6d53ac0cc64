"""Ingestion: files and folders in, documents in the knowledge index out.

Each file is read, chunked, embedded (each chunk, and each of its sentences for ranking by
meaning) and written as one transaction, so a failure half-way (or a
crash) leaves the previous version of that document searchable. A file whose bytes (SHA-256),
embedding model and way of reading (`READING`) are unchanged is skipped without parsing or
embedding; a bad file
(unreadable, binary, empty, too large, unpacking past the limit, taking longer than the parse
deadline) is skipped with one line naming it and why, and the rest goes on.

Parsing runs in a worker process with a per-file deadline (bot/knowledge/parsing.py), so no
document can stall the event loop. In a folder, a link (symlink) to a file is followed only when
it resolves inside that folder; one resolving outside is skipped with a line saying so (the
file is never opened), and linked folders are not walked into. Files named one by one are taken
as meant, links or not.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.knowledge.parsing import DocumentParser, ParseJob
from bot.knowledge.readers import READERS, ReadLimits, UnreadableDocument, reader_for
from bot.storage.knowledge import ChunkRecord, DocumentRecord, KnowledgeStore
from dialogs.knowledge.meaning import sentence_texts
from models.embeddings import EmbeddingWorker

# How documents are read into chunks: a new value re-reads every document at the next sync
# (2: tables as row sentences, list items as units, bot/knowledge/structure.py; 3: each chunk's
# sentence vectors kept beside it, so ranking by meaning embeds only the question).
READING = "reading 3"
EMBED_SLICE = 32  # texts per embedding call while indexing (the worker's batch)
logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
MB = 1024 * 1024


@dataclass(frozen=True)
class IngestLimits:
    """Bounds on one file: its size on disk and unpacked (bytes), the wall time its parse may
    take (seconds); the chunk sizes (tokens); how often progress is reported (seconds)."""

    max_file_bytes: int = 50 * MB
    max_unpacked_bytes: int = ReadLimits.max_unpacked_bytes  # a .docx's parts, all together
    parse_timeout_s: float = 60.0  # the worker parsing a file is killed after this
    parse_memory_bytes: int = 1024 * MB  # the worker's address space (Linux; 0: no cap)
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


@dataclass(frozen=True)
class FoundFile:
    """A file to index: named (`folder` None) or found in `folder`; `refused` says why it is
    left out without being opened."""

    path: Path
    folder: Path | None = None
    refused: str = ""
    is_folder: bool = False  # a linked folder (refused: reported whatever its name)


def iter_files(paths: Iterable[Path]) -> Iterator[FoundFile]:
    """Each file named or found in a folder (sorted, hidden names left out). In a folder, a link
    resolving outside it comes `refused` (a linked folder only then, as it is never walked)."""
    for path in paths:
        if not path.is_dir():
            yield FoundFile(path)
            continue
        for root, folders, files in os.walk(path):
            here = Path(root)
            kept = []
            for name in sorted(f for f in folders if not f.startswith(".")):
                if not (here / name).is_symlink():
                    kept.append(name)
                elif (why := _escapes(here / name, path)) is not None:
                    yield FoundFile(here / name, path, f"a link to a folder {why}", is_folder=True)
            folders[:] = kept
            for name in sorted(files):
                if name.startswith("."):
                    continue
                file = here / name
                why = _escapes(file, path) if file.is_symlink() else None
                yield FoundFile(file, path, f"a link to a file {why}" if why else "")


def _escapes(path: Path, folder: Path, target: Path | None = None) -> str | None:
    """Why `path` is refused: it resolves (to `target`, when known) outside `folder`; None when
    it resolves inside."""
    target = target or path.resolve()
    if target == folder or folder in target.parents:
        return None
    return f"outside the indexed folder ({target}); not followed"


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
        parser = DocumentParser(self._limits.parse_timeout_s, self._limits.parse_memory_bytes)
        try:
            for found in iter_files(p.expanduser().resolve() for p in paths):
                named = found.folder is None
                if found.path.suffix.lower() not in READERS and not (named or found.is_folder):
                    continue
                await self._add_file(found, parser, report)
                done += 1
                now = time.monotonic()
                if now - last_report >= self._limits.progress_every_s:
                    last_report = now
                    self._progress(f"knowledge: {done} files so far; {report.summary()}")
                report.seconds = now - started
        finally:
            parser.close()
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
            folders = [root for root in resolved if root in source.parents]
            if source not in resolved and not folders:
                continue
            if not await asyncio.to_thread(_still_there, source, folders):
                await self._store.remove(document.id)
                report.removed += 1
        return report

    async def _add_file(
        self, found: FoundFile, parser: DocumentParser, report: IngestReport
    ) -> None:
        source = str(found.path)
        model = f"{self._embedder.model.name}; {READING}"  # what made its chunks and vectors
        try:
            if found.refused:
                raise UnreadableDocument(found.refused)
            reader = reader_for(found.path)
            data, sha256 = await asyncio.to_thread(self._read, found)
            existing = await self._store.document(source)
            if existing is not None and existing.sha256 == sha256 and existing.model == model:
                report.unchanged += 1
                return
            parsed = await parser.parse(
                ParseJob(
                    reader,
                    data,
                    found.path.stem,
                    ReadLimits(self._limits.max_unpacked_bytes),
                    self._limits.max_tokens,
                    self._limits.overlap_tokens,
                )
            )
        except (UnreadableDocument, OSError) as error:
            why = str(error) if isinstance(error, UnreadableDocument) else _os_reason(error)
            report.skipped.append((source, why))
            self._progress(f"knowledge: skipped {source}: {why}")
            return
        record = DocumentRecord(document_id(source), source, parsed.title, "", sha256, model)
        chunks = [ChunkRecord(c.text, c.heading, c.page, c.ordinal) for c in parsed.chunks]
        texts = [_embedding_text(record.title, chunk) for chunk in chunks]
        vectors = await self._embed(texts)
        sentences = [sentence_texts(chunk.text, chunk.heading) for chunk in chunks]
        every = [sentence for chunk in sentences for sentence in chunk]
        flat = await self._embed(every) if every else vectors[:0]
        per_chunk = np.split(flat, np.cumsum([len(chunk) for chunk in sentences])[:-1])
        await self._store.replace_document(record, chunks, vectors, per_chunk)
        report.chunks += len(chunks)
        if existing is None:
            report.added += 1
        else:
            report.updated += 1

    async def _embed(self, texts: list[str]) -> np.ndarray:
        """`texts` in slices of EMBED_SLICE: the embedding worker runs a long call alone, and a
        question asked while a large document is indexed waits for one slice, not the whole."""
        parts = [
            await self._embedder.embed(texts[start : start + EMBED_SLICE])
            for start in range(0, len(texts), EMBED_SLICE)
        ]
        return np.concatenate(parts)

    def _read(self, found: FoundFile) -> tuple[bytes, str]:
        """The file's bytes and their SHA-256 (on a worker thread). The path is resolved and
        checked again (a link found in a folder may have changed since), then opened without
        following a link; only a regular file of at most `max_file_bytes` is read."""
        real = found.path.resolve(strict=True)
        if found.folder is not None and (why := _escapes(found.path, found.folder, real)):
            raise UnreadableDocument(f"a link to a file {why}")
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        with open(os.open(real, flags | getattr(os, "O_BINARY", 0)), "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UnreadableDocument("not a regular file")
            limit = self._limits.max_file_bytes
            if info.st_size > limit:
                raise UnreadableDocument(
                    f"{info.st_size / MB:.0f} MB is over the {limit / MB:.0f} MB limit "
                    "(BOTLOOM_KNOWLEDGE_MAX_FILE_MB)"
                )
            data = file.read(limit + 1)
        if len(data) > limit:
            raise UnreadableDocument(
                f"over the {limit / MB:.0f} MB limit (BOTLOOM_KNOWLEDGE_MAX_FILE_MB)"
            )
        if not data:
            raise UnreadableDocument("empty file")
        return data, hashlib.sha256(data).hexdigest()


def _still_there(source: Path, folders: list[Path]) -> bool:
    """Whether an indexed file is still one to index: it exists and, found in a folder, does
    not resolve outside it (a document indexed through a link that now escapes is removed)."""
    if not source.is_file():
        return False
    return not folders or any(_escapes(source, folder) is None for folder in folders)


def _embedding_text(title: str, chunk: ChunkRecord) -> str:
    """What is embedded: the chunk under its document title and heading, for context."""
    heading = f" — {chunk.heading}" if chunk.heading else ""
    return f"{title}{heading}\n{chunk.text}"


def _os_reason(error: OSError) -> str:
    return error.strerror or type(error).__name__

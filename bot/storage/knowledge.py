"""The knowledge index: documents and their chunks, with a lexical and a vector index.

`KnowledgeStore` is what ingestion writes and the retriever reads; SQLite (the state's file) and
PostgreSQL implement it. Replacing a document is one transaction: a crash or an error half-way
leaves the previous version searchable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class DocumentRecord:
    id: str  # short, stable: derived from `source`
    source: str  # the file's absolute path (or a URL)
    title: str
    url: str  # where a reader can open it ("" for a local file)
    sha256: str  # of the file's bytes: an unchanged file is not embedded again
    model: str  # the embedding model that made the vectors
    chunks: int = 0
    indexed_at: float = 0.0


@dataclass(frozen=True)
class ChunkRecord:
    text: str
    heading: str
    page: int | None
    ordinal: int


@dataclass(frozen=True)
class StoredChunk:
    id: int
    document_id: str
    title: str
    source: str
    url: str
    text: str
    heading: str
    page: int | None


class KnowledgeStore(Protocol):
    """Scores: `lexical` returns (chunk id, rank score, higher is better), `dense` and
    `similarities` cosine similarity in [-1, 1]. Raises StorageUnavailable when unreachable."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def document(self, source: str) -> DocumentRecord | None: ...

    async def documents(self) -> list[DocumentRecord]: ...

    async def replace_document(
        self, document: DocumentRecord, chunks: Sequence[ChunkRecord], vectors: np.ndarray
    ) -> None: ...

    async def remove(self, document_id: str) -> bool: ...

    async def chunk_count(self) -> int: ...

    async def lexical(self, query: str, limit: int) -> list[tuple[int, float]]: ...

    async def dense(self, vector: np.ndarray, limit: int) -> list[tuple[int, float]]: ...

    async def similarities(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]: ...

    async def chunks(self, ids: Sequence[int]) -> list[StoredChunk]: ...


# Words too common to help a lexical match (the dense side handles the phrasing).
STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it its me my of on or our so "
    "that the their there this to was we what when where which who why will with you your "
    "much many long".split()
)
_TERM = re.compile(r"[\w]+(?:[-./][\w]+)*")


def query_terms(query: str) -> list[list[str]]:
    """The query's search terms, each a list of word tokens: "form RW-7?" -> [["form"],
    ["rw", "7"]] (a code stays one phrase). Stopwords and duplicates are dropped."""
    terms: list[list[str]] = []
    seen: set[str] = set()
    for match in _TERM.finditer(query.lower()):
        words = re.findall(r"\w+", match.group(0))
        key = " ".join(words)
        if not words or key in seen or (len(words) == 1 and words[0] in STOPWORDS):
            continue
        seen.add(key)
        terms.append(words)
    return terms


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def top_k(scores: np.ndarray, ids: np.ndarray, limit: int) -> list[tuple[int, float]]:
    """The `limit` best (id, score) pairs, best first."""
    if scores.size == 0 or limit <= 0:
        return []
    limit = min(limit, scores.size)
    best = np.argpartition(-scores, limit - 1)[:limit]
    best = best[np.argsort(-scores[best])]
    return [(int(ids[i]), float(scores[i])) for i in best]

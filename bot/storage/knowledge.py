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

from dialogs.text import SEARCH_STOPWORDS


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
    sentences: bytes | None = None  # its sentences' vectors, float16 rows (sentence_texts order)


@dataclass(frozen=True)
class Candidates:
    """One search's candidates, found in one store call: the best by meaning (`dense`, cosine
    similarity) and by words (`lexical`, rank score), (chunk id, score) best first; the cosine
    similarity of every candidate, and their chunks."""

    dense: list[tuple[int, float]]
    lexical: list[tuple[int, float]]
    similarity: dict[int, float]
    chunks: dict[int, StoredChunk]


class KnowledgeStore(Protocol):
    """Scores: `lexical` returns (chunk id, rank score, higher is better), `dense` cosine
    similarity in [-1, 1]. `candidates` is what the retriever uses: both searches, the
    similarities and the chunk rows at once. Raises StorageUnavailable when unreachable."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def document(self, source: str) -> DocumentRecord | None: ...

    async def documents(self) -> list[DocumentRecord]: ...

    async def replace_document(
        self,
        document: DocumentRecord,
        chunks: Sequence[ChunkRecord],
        vectors: np.ndarray,
        sentences: Sequence[np.ndarray] | None = None,
    ) -> None:
        """`sentences`: each chunk's sentence vectors (dialogs.knowledge.meaning.sentence_texts),
        kept beside it so a search needs not embed them; None: not kept."""
        ...

    async def remove(self, document_id: str) -> bool: ...

    async def chunk_count(self) -> int: ...

    async def has_chunks(self) -> bool: ...

    async def candidates(self, query: str, vector: np.ndarray, limit: int) -> Candidates: ...

    async def lexical(self, query: str, limit: int) -> list[tuple[int, float]]: ...

    async def dense(self, vector: np.ndarray, limit: int) -> list[tuple[int, float]]: ...

    async def chunks(self, ids: Sequence[int]) -> list[StoredChunk]: ...


_TERM = re.compile(r"[\w]+(?:[-./][\w]+)*")


def query_terms(query: str) -> list[list[str]]:
    """The query's search terms, each a list of word tokens: "form RW-7?" -> [["form"],
    ["rw", "7"]] (a code stays one phrase). Stopwords and duplicates are dropped."""
    terms: list[list[str]] = []
    seen: set[str] = set()
    for match in _TERM.finditer(query.lower()):
        words = re.findall(r"\w+", match.group(0))
        key = " ".join(words)
        if not words or key in seen or (len(words) == 1 and words[0] in SEARCH_STOPWORDS):
            continue
        seen.add(key)
        terms.append(words)
    return terms


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def sentence_blobs(
    chunks: Sequence[ChunkRecord], sentences: Sequence[np.ndarray] | None
) -> list[bytes | None]:
    """Each chunk's sentence vectors as one float16 blob (None where they are not kept): a
    chunk has several sentences, and half the bytes change a cosine similarity by about 1e-3."""
    if sentences is None:
        return [None] * len(chunks)
    if len(sentences) != len(chunks):
        raise ValueError(f"{len(chunks)} chunks but {len(sentences)} sentence matrices")
    return [np.asarray(matrix, dtype="<f2").tobytes() for matrix in sentences]


def sentence_matrix(blob: bytes | None, dimension: int) -> np.ndarray | None:
    """A chunk's kept sentence vectors as float32 (n, dimension) rows; None when not kept or
    made by a model of another size."""
    if not blob or len(blob) % (2 * dimension):
        return None
    return np.frombuffer(blob, dtype="<f2").astype(np.float32).reshape(-1, dimension)


def fts5_match(query: str) -> str:
    """The query's terms as an FTS5 MATCH expression (any of them; a code stays one phrase);
    "" when it has none."""
    return " OR ".join('"' + " ".join(words) + '"' for words in query_terms(query))


def tsquery(query: str) -> str:
    """The query's terms as a PostgreSQL tsquery (any of them, a code as a phrase); "" when it
    has none."""
    return " | ".join(" <-> ".join(words) for words in query_terms(query))


def matrix_of(blobs: Sequence[bytes], dimension: int) -> np.ndarray:
    """float32 blobs of `dimension` values as one contiguous (n, dimension) matrix."""
    if not blobs:
        return np.zeros((0, dimension), dtype=np.float32)
    joined = np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32, copy=False)
    return joined.reshape(len(blobs), dimension)


def exact_candidates(
    ids: np.ndarray, matrix: np.ndarray, vector: np.ndarray, lexical: list, limit: int
) -> tuple[list[tuple[int, float]], dict[int, float]]:
    """Exact search over `matrix` (rows: unit vectors of the sorted `ids`): the `limit` best
    and the similarity of those and of the `lexical` hits."""
    if matrix.shape[0] == 0:
        return [], {}
    scores = matrix @ vector
    dense = top_k(scores, ids, limit)
    similarity = dict(dense)
    for item, _ in lexical:
        row = int(np.searchsorted(ids, item))
        if row < len(ids) and ids[row] == item and item not in similarity:
            similarity[item] = float(scores[row])
    return dense, similarity


def top_k(scores: np.ndarray, ids: np.ndarray, limit: int) -> list[tuple[int, float]]:
    """The `limit` best (id, score) pairs, best first."""
    if scores.size == 0 or limit <= 0:
        return []
    limit = min(limit, scores.size)
    best = np.argpartition(-scores, limit - 1)[:limit]
    best = best[np.argsort(-scores[best])]
    return [(int(ids[i]), float(scores[i])) for i in best]

"""The knowledge index in PostgreSQL, shared by every replica.

Words: a generated ``tsvector`` column (title and heading weighted above the text) with a GIN
index. Vectors: where the server has the pgvector extension (0.7 or later; managed PostgreSQL
services have it), a ``halfvec`` column (16-bit floats: half the space, and the same neighbours
for sentence embeddings) with an HNSW index (cosine); where it has not, float32 ``bytea``
searched exactly in each replica's memory, reloaded when the index changes (a generation
counter). A retrieval is one query with pgvector (bot/storage/postgres/pgvector.py) and, for
exact search, a generation check, the words search and the rows of the candidates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import numpy as np
from asyncpg import exceptions as pg_errors

from bot.storage.errors import StorageUnavailable
from bot.storage.knowledge import (
    Candidates,
    ChunkRecord,
    DocumentRecord,
    StoredChunk,
    exact_candidates,
    matrix_of,
    sentence_blobs,
    top_k,
    tsquery,
    vector_bytes,
)
from bot.storage.postgres.knowledge_schema import create_schema
from bot.storage.postgres.pgvector import lexical_sql, pgvector_candidates
from bot.storage.urls import check_namespace, scrub, where

_UNREACHABLE = (OSError, TimeoutError, asyncpg.InterfaceError, pg_errors.PostgresConnectionError,
                pg_errors.InvalidAuthorizationSpecificationError, pg_errors.InvalidCatalogNameError,
                pg_errors.CannotConnectNowError)  # fmt: skip
_DOCUMENT_COLUMNS = "id, source, title, url, sha256, model, chunks, indexed_at"


def _vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, np.float32)) + "]"


class PostgresKnowledgeStore:
    """A `KnowledgeStore` in tables `<namespace>_knowledge_*`. `use_pgvector`: None detects
    (CREATE EXTENSION vector where it is available and allowed), False forces exact search."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "botloom",
        max_connections: int = 4,
        timeout_s: float = 10.0,
        use_pgvector: bool | None = None,
    ) -> None:
        self._url = url
        self.where = where(url, 5432)
        ns = check_namespace(namespace)
        self._documents, self._chunks = f"{ns}_knowledge_documents", f"{ns}_knowledge_chunks"
        self._meta = f"{ns}_knowledge_meta"
        self._ns = ns
        self._max_connections = max_connections
        self._timeout_s = timeout_s
        self._want_pgvector = use_pgvector
        self.pgvector = False  # known after open()
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._indexed_dimensions: set[int] = set()
        # Exact search without pgvector: this replica's copy of the vectors.
        self._ids = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._generation = -1
        self._refreshing = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresKnowledgeStore({self.where!r}, pgvector={self.pgvector})"

    async def open(self) -> None:
        """Connect and create the tables. Raises StorageUnavailable."""
        async with self._opening:
            if self._pool is not None:
                return
            try:
                pool = await asyncpg.create_pool(
                    self._url, min_size=1, max_size=self._max_connections,
                    timeout=self._timeout_s, command_timeout=max(self._timeout_s, 600.0),
                )  # fmt: skip
                self.pgvector = await create_schema(
                    pool, self._documents, self._chunks, self._meta, self._want_pgvector
                )
            except _UNREACHABLE as error:
                message = scrub(f"{type(error).__name__}: {error}", self._url)
                raise StorageUnavailable(
                    f"knowledge store PostgreSQL at {self.where}: {message}"
                ) from None
            self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _conn_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            await self.open()
        assert self._pool is not None
        return self._pool

    async def document(self, source: str) -> DocumentRecord | None:
        pool = await self._conn_pool()
        row = await pool.fetchrow(
            f"SELECT {_DOCUMENT_COLUMNS} FROM {self._documents} WHERE source = $1", source
        )
        return DocumentRecord(*row) if row else None

    async def documents(self) -> list[DocumentRecord]:
        pool = await self._conn_pool()
        query = f"SELECT {_DOCUMENT_COLUMNS} FROM {self._documents} ORDER BY source"
        rows = await pool.fetch(query)
        return [DocumentRecord(*row) for row in rows]

    async def replace_document(
        self,
        document: DocumentRecord,
        chunks: Sequence[ChunkRecord],
        vectors: np.ndarray,
        sentences: Sequence[np.ndarray] | None = None,
    ) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        blobs = sentence_blobs(chunks, sentences)
        pool = await self._conn_pool()
        dimension = int(vectors.shape[1]) if len(vectors) else 0
        if self.pgvector and dimension and dimension not in self._indexed_dimensions:
            await self._ensure_hnsw(pool, dimension)
        encode = _vector_text if self.pgvector else vector_bytes
        cast = "::halfvec" if self.pgvector else ""
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"DELETE FROM {self._documents} WHERE id = $1", document.id)
            await conn.execute(
                f"INSERT INTO {self._documents} ({_DOCUMENT_COLUMNS}) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                document.id, document.source, document.title, document.url, document.sha256,
                document.model, len(chunks), time.time(),
            )  # fmt: skip
            await conn.executemany(
                f"INSERT INTO {self._chunks} (document_id, ordinal, title, text, heading, page, "
                f"embedding, sentences) VALUES ($1,$2,$3,$4,$5,$6,$7{cast},$8)",
                [(document.id, c.ordinal, document.title, c.text, c.heading, c.page, encode(v), b)
                 for c, v, b in zip(chunks, vectors, blobs, strict=True)],
            )  # fmt: skip
            await self._bump(conn)

    async def _ensure_hnsw(self, pool: asyncpg.Pool, dimension: int) -> None:
        """One HNSW index per vector size (an expression index: the column has no fixed size)."""
        await pool.execute(
            f"CREATE INDEX IF NOT EXISTS {self._chunks}_hnsw_{dimension} ON {self._chunks} "
            f"USING hnsw ((embedding::halfvec({dimension})) halfvec_cosine_ops) "
            f"WHERE vector_dims(embedding) = {dimension}"
        )
        self._indexed_dimensions.add(dimension)

    async def _bump(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"INSERT INTO {self._meta} (key, value) VALUES ('generation', 1) "
            f"ON CONFLICT (key) DO UPDATE SET value = {self._meta}.value + 1"
        )

    async def remove(self, document_id: str) -> bool:
        pool = await self._conn_pool()
        async with pool.acquire() as conn, conn.transaction():
            status = await conn.execute(f"DELETE FROM {self._documents} WHERE id = $1", document_id)
            removed = status != "DELETE 0"
            if removed:
                await self._bump(conn)
        return removed

    async def chunk_count(self) -> int:
        pool = await self._conn_pool()
        return int(await pool.fetchval(f"SELECT count(*) FROM {self._chunks}"))

    async def has_chunks(self) -> bool:
        pool = await self._conn_pool()
        return bool(await pool.fetchval(f"SELECT EXISTS (SELECT 1 FROM {self._chunks})"))

    async def lexical(self, query: str, limit: int) -> list[tuple[int, float]]:
        terms = tsquery(query)
        if not terms:
            return []
        pool = await self._conn_pool()
        rows = await pool.fetch(lexical_sql(self._chunks, terms, 2), limit, terms)
        return [(int(r["id"]), float(r["rank"])) for r in rows]

    async def dense(self, vector: np.ndarray, limit: int) -> list[tuple[int, float]]:
        vector = np.asarray(vector, np.float32)
        if not self.pgvector:
            ids, matrix = await self._refresh(vector.shape[0])
            return await asyncio.to_thread(_top, ids, matrix, vector, limit)
        found = await self._pgvector_candidates("", vector, limit)
        return found.dense

    async def candidates(self, query: str, vector: np.ndarray, limit: int) -> Candidates:
        vector = np.asarray(vector, np.float32)
        if self.pgvector:
            return await self._pgvector_candidates(tsquery(query), vector, limit)
        ids, matrix = await self._refresh(vector.shape[0])
        lexical = await self.lexical(query, limit)
        dense, similarity = await asyncio.to_thread(
            exact_candidates, ids, matrix, vector, lexical, limit
        )
        chunks = await self.chunks(list({*similarity, *(i for i, _ in lexical)}))
        return Candidates(dense, lexical, similarity, {c.id: c for c in chunks})

    async def _pgvector_candidates(self, terms: str, vector: np.ndarray, limit: int) -> Candidates:
        pool = await self._conn_pool()
        return await pgvector_candidates(
            pool, self._chunks, self._documents, terms, _vector_text(vector), vector.shape[0], limit
        )

    async def chunks(self, ids: Sequence[int]) -> list[StoredChunk]:
        if not ids:
            return []
        pool = await self._conn_pool()
        rows = await pool.fetch(
            "SELECT c.id, c.document_id, d.title, d.source, d.url, c.text, c.heading, c.page, "
            f"c.sentences FROM {self._chunks} c JOIN {self._documents} d ON d.id = c.document_id "
            "WHERE c.id = ANY($1::bigint[])",
            list(ids),
        )
        found: dict[int, Any] = {int(r["id"]): r for r in rows}
        return [StoredChunk(*found[i]) for i in ids if i in found]

    async def _refresh(self, dimension: int) -> tuple[np.ndarray, np.ndarray]:
        """This replica's vectors (sorted ids, their rows), reloaded when the index changed
        (exact search only; the matrix is built off the event loop)."""
        pool = await self._conn_pool()
        async with self._refreshing:
            generation = await pool.fetchval(
                f"SELECT value FROM {self._meta} WHERE key = 'generation'"
            )
            generation = int(generation or 0)
            if generation != self._generation or self._matrix.shape[1:] != (dimension,):
                rows = await pool.fetch(
                    f"SELECT id, embedding FROM {self._chunks} "
                    "WHERE length(embedding) = $1 ORDER BY id",
                    4 * dimension,
                )
                self._ids = np.array([r["id"] for r in rows], dtype=np.int64)
                blobs = [r["embedding"] for r in rows]
                self._matrix = await asyncio.to_thread(matrix_of, blobs, dimension)
                self._generation = generation
            return self._ids, self._matrix


def _top(ids: np.ndarray, matrix: np.ndarray, vector: np.ndarray, limit: int) -> list:
    return top_k(matrix @ vector, ids, limit) if len(ids) else []

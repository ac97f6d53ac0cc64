"""The knowledge index in SQLite (by default the state's own file): FTS5 for words, vectors as
float32 blobs searched exactly (one matrix product over every chunk, kept in memory and
reloaded when another process changes the index)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bot.storage.knowledge import (
    Candidates,
    ChunkRecord,
    DocumentRecord,
    StoredChunk,
    exact_candidates,
    fts5_match,
    matrix_of,
    sentence_blobs,
    top_k,
    vector_bytes,
)
from bot.storage.sqlite.worker import SqliteWorker, immediate

_SCHEMA = (
    # WAL with NORMAL sync: a crash never leaves a half-written document; a power cut may lose
    # the last few documents written (the next ingestion writes them again).
    "PRAGMA synchronous = NORMAL",
    "CREATE TABLE IF NOT EXISTS knowledge_documents (id TEXT PRIMARY KEY, source TEXT NOT NULL "
    "UNIQUE, title TEXT NOT NULL, url TEXT NOT NULL, sha256 TEXT NOT NULL, model TEXT NOT NULL, "
    "chunks INTEGER NOT NULL, indexed_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS knowledge_chunks (id INTEGER PRIMARY KEY, document_id TEXT NOT "
    "NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL, heading TEXT NOT NULL, page INTEGER, "
    "embedding BLOB NOT NULL, sentences BLOB)",
    "CREATE INDEX IF NOT EXISTS knowledge_chunks_document ON knowledge_chunks (document_id)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_fts USING fts5(title, heading, text, "
    "tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TABLE IF NOT EXISTS knowledge_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
_BUMP = (
    "INSERT INTO knowledge_meta (key, value) VALUES ('generation', 1) "
    "ON CONFLICT (key) DO UPDATE SET value = value + 1"
)
_DOCUMENT_COLUMNS = "id, source, title, url, sha256, model, chunks, indexed_at"


class SqliteKnowledgeStore:
    """A `KnowledgeStore` in the SQLite file at `path`; every call runs on one worker thread."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self._worker = SqliteWorker(
            self.path,
            schema=_SCHEMA,
            upgrade=_add_sentences_column,
            busy_timeout_s=busy_timeout_s,
            name="sqlite-knowledge",
        )
        # The exact-search matrix (worker thread only): ids, unit rows, the generation loaded.
        self._ids = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._generation = -1

    async def open(self) -> None:
        await self._worker.run(lambda conn: None)

    async def close(self) -> None:
        await self._worker.close()

    async def document(self, source: str) -> DocumentRecord | None:
        rows = await self._worker.run(
            _fetch, f"SELECT {_DOCUMENT_COLUMNS} FROM knowledge_documents WHERE source = ?", source
        )
        return DocumentRecord(*rows[0]) if rows else None

    async def documents(self) -> list[DocumentRecord]:
        query = f"SELECT {_DOCUMENT_COLUMNS} FROM knowledge_documents ORDER BY source"
        return [DocumentRecord(*row) for row in await self._worker.run(_fetch, query)]

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
        await self._worker.run(self._replace, document, list(chunks), vectors, blobs)

    async def remove(self, document_id: str) -> bool:
        removed: bool = await self._worker.run(self._remove, document_id)
        return removed

    async def chunk_count(self) -> int:
        rows = await self._worker.run(_fetch, "SELECT count(*) FROM knowledge_chunks")
        return int(rows[0][0])

    async def has_chunks(self) -> bool:
        rows = await self._worker.run(_fetch, "SELECT EXISTS (SELECT 1 FROM knowledge_chunks)")
        return bool(rows[0][0])

    async def lexical(self, query: str, limit: int) -> list[tuple[int, float]]:
        return await self._worker.run(_lexical, fts5_match(query), limit)

    async def dense(self, vector: np.ndarray, limit: int) -> list[tuple[int, float]]:
        return await self._worker.run(self._dense, np.asarray(vector, np.float32), limit)

    async def candidates(self, query: str, vector: np.ndarray, limit: int) -> Candidates:
        vector = np.asarray(vector, np.float32)
        return await self._worker.run(self._candidates, fts5_match(query), vector, limit)

    async def chunks(self, ids: Sequence[int]) -> list[StoredChunk]:
        found = await self._worker.run(_chunks, list(ids))
        return [found[i] for i in ids if i in found]

    # On the worker thread.

    @staticmethod
    def _replace(
        conn: sqlite3.Connection,
        document: DocumentRecord,
        chunks: list[ChunkRecord],
        vectors: np.ndarray,
        sentences: list[bytes | None],
    ) -> None:
        with immediate(conn):
            _delete_document(conn, document.id)
            conn.execute(
                f"INSERT INTO knowledge_documents ({_DOCUMENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                (
                    document.id,
                    document.source,
                    document.title,
                    document.url,
                    document.sha256,
                    document.model,
                    len(chunks),
                    time.time(),
                ),
            )
            for chunk, vector, blob in zip(chunks, vectors, sentences, strict=True):
                cursor = conn.execute(
                    "INSERT INTO knowledge_chunks (document_id, ordinal, text, heading, page, "
                    "embedding, sentences) VALUES (?,?,?,?,?,?,?)",
                    (document.id, chunk.ordinal, chunk.text, chunk.heading, chunk.page,
                     vector_bytes(vector), blob),
                )  # fmt: skip
                conn.execute(
                    "INSERT INTO knowledge_fts (rowid, title, heading, text) VALUES (?,?,?,?)",
                    (cursor.lastrowid, document.title, chunk.heading, chunk.text),
                )
            conn.execute(_BUMP)

    @staticmethod
    def _remove(conn: sqlite3.Connection, document_id: str) -> bool:
        with immediate(conn):
            removed = _delete_document(conn, document_id)
            if removed:
                conn.execute(_BUMP)
        return removed

    def _dense(self, conn: sqlite3.Connection, vector: np.ndarray, limit: int) -> list:
        self._refresh(conn, vector.shape[0])
        if self._matrix.shape[0] == 0:
            return []
        return top_k(self._matrix @ vector, self._ids, limit)

    def _candidates(
        self, conn: sqlite3.Connection, match: str, vector: np.ndarray, limit: int
    ) -> Candidates:
        """Both searches, the similarities and the chunks in one worker call."""
        self._refresh(conn, vector.shape[0])
        lexical = _lexical(conn, match, limit)
        dense, similarity = exact_candidates(self._ids, self._matrix, vector, lexical, limit)
        chunks = _chunks(conn, list({*similarity, *(i for i, _ in lexical)}))
        return Candidates(dense, lexical, similarity, chunks)

    def _refresh(self, conn: sqlite3.Connection, dimension: int) -> None:
        """Reload the matrix when the index changed (in this process or another one)."""
        row = conn.execute("SELECT value FROM knowledge_meta WHERE key = 'generation'").fetchone()
        generation = int(row[0]) if row else 0
        if generation == self._generation and self._matrix.shape[1:] == (dimension,):
            return
        rows = conn.execute(
            "SELECT id, embedding FROM knowledge_chunks WHERE length(embedding) = ? ORDER BY id",
            (4 * dimension,),
        ).fetchall()
        self._ids = np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows))
        self._matrix = matrix_of([blob for _, blob in rows], dimension)
        self._generation = generation


def _add_sentences_column(conn: sqlite3.Connection) -> None:
    """An index written before sentence vectors were kept gets their column (empty: its chunks'
    sentences are embedded when searched, until the document is indexed again)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(knowledge_chunks)")}
    if "sentences" not in columns:
        with immediate(conn):
            columns = {row[1] for row in conn.execute("PRAGMA table_info(knowledge_chunks)")}
            if "sentences" not in columns:  # not added by another process meanwhile
                conn.execute("ALTER TABLE knowledge_chunks ADD COLUMN sentences BLOB")


def _fetch(conn: sqlite3.Connection, sql: str, *args: object) -> list[tuple]:
    return conn.execute(sql, args).fetchall()


def _lexical(conn: sqlite3.Connection, match: str, limit: int) -> list[tuple[int, float]]:
    if not match:
        return []
    sql = (
        "SELECT rowid, -bm25(knowledge_fts, 1.0, 1.5, 1.0) FROM knowledge_fts "
        "WHERE knowledge_fts MATCH ? ORDER BY bm25(knowledge_fts, 1.0, 1.5, 1.0) LIMIT ?"
    )
    return [(int(i), float(s)) for i, s in conn.execute(sql, (match, limit))]


def _chunks(conn: sqlite3.Connection, ids: list[int]) -> dict[int, StoredChunk]:
    if not ids:
        return {}
    sql = (
        "SELECT c.id, c.document_id, d.title, d.source, d.url, c.text, c.heading, c.page, "
        "c.sentences FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id "
        f"WHERE c.id IN ({','.join('?' * len(ids))})"
    )
    return {row[0]: StoredChunk(*row) for row in conn.execute(sql, ids)}


def _delete_document(conn: sqlite3.Connection, document_id: str) -> bool:
    ids = [row[0] for row in conn.execute(
        "SELECT id FROM knowledge_chunks WHERE document_id = ?", (document_id,)
    )]  # fmt: skip
    conn.executemany("DELETE FROM knowledge_fts WHERE rowid = ?", [(i,) for i in ids])
    conn.execute("DELETE FROM knowledge_chunks WHERE document_id = ?", (document_id,))
    cursor = conn.execute("DELETE FROM knowledge_documents WHERE id = ?", (document_id,))
    return cursor.rowcount > 0

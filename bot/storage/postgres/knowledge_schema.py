"""The knowledge index's tables in PostgreSQL (bot/storage/postgres/knowledge.py): created once
by whichever replica comes first (under an advisory lock), with pgvector where the server has it,
and brought up to date where an older botloom created them."""

from __future__ import annotations

import asyncpg
from asyncpg import exceptions as pg_errors


async def create_schema(
    pool: asyncpg.Pool, documents: str, chunks: str, meta: str, want_pgvector: bool | None
) -> bool:
    """Create the tables `documents`, `chunks` and `meta` where missing; whether the vectors are
    pgvector's `halfvec` (True) or float32 `bytea` searched exactly (False). `want_pgvector`:
    None uses it where available, False never."""
    async with pool.acquire() as conn:
        pgvector = want_pgvector is not False and await _enable_pgvector(conn)
        embedding = "halfvec" if pgvector else "bytea"
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", chunks)
            for statement in (
                f"CREATE TABLE IF NOT EXISTS {documents} (id text PRIMARY KEY, "
                "source text NOT NULL UNIQUE, title text NOT NULL, url text NOT NULL, "
                "sha256 text NOT NULL, model text NOT NULL, chunks integer NOT NULL, "
                "indexed_at double precision NOT NULL)",
                f"CREATE TABLE IF NOT EXISTS {chunks} (id bigserial PRIMARY KEY, "
                f"document_id text NOT NULL REFERENCES {documents} (id) ON DELETE "
                "CASCADE, ordinal integer NOT NULL, title text NOT NULL, text text NOT NULL, "
                f"heading text NOT NULL, page integer, embedding {embedding} NOT NULL, "
                "sentences bytea, "
                "tsv tsvector GENERATED ALWAYS AS (setweight(to_tsvector('english', "
                "title || ' ' || heading), 'A') || to_tsvector('english', text)) STORED)",
                f"CREATE INDEX IF NOT EXISTS {chunks}_document ON {chunks} (document_id)",
                f"CREATE INDEX IF NOT EXISTS {chunks}_tsv ON {chunks} USING gin (tsv)",
                f"CREATE TABLE IF NOT EXISTS {meta} (key text PRIMARY KEY, value bigint NOT NULL)",
            ):
                await conn.execute(statement)
            # An index written before sentence vectors were kept gets their column (empty until
            # re-indexed). Checked first: ALTER TABLE takes an exclusive lock even when the
            # column is there, and would queue every replica's reads behind a long transaction.
            if not await _has_column(conn, chunks, "sentences"):
                await conn.execute(f"ALTER TABLE {chunks} ADD COLUMN IF NOT EXISTS sentences bytea")
            kind = await conn.fetchval(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                "attrelid = $1::regclass AND attname = 'embedding'",
                chunks,
            )
            return bool(kind != "bytea")


async def _has_column(conn: asyncpg.Connection, table: str, column: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass "
            "AND attname = $2 AND NOT attisdropped)",
            table,
            column,
        )
    )


async def _enable_pgvector(conn: asyncpg.Connection) -> bool:
    version = await conn.fetchval(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
    )
    if version is None or tuple(int(p) for p in version.split(".")[:2]) < (0, 7):
        return False  # halfvec came with pgvector 0.7
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except pg_errors.InsufficientPrivilegeError:
        return False
    return True

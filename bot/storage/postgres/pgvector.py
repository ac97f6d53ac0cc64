"""The PostgreSQL knowledge store's searches as SQL: full text, and (with pgvector) one query
that runs both searches over the HNSW index and the text index and returns every candidate's
similarity and row, so that a retrieval is one round trip."""

from __future__ import annotations

import asyncpg

from bot.storage.knowledge import Candidates, StoredChunk

EF_SEARCH = 40  # pgvector's default hnsw.ef_search: enough for the retriever's 20 candidates


def lexical_sql(chunks: str, terms: str, arg: int) -> str:
    """The full-text search over table `chunks` for tsquery parameter `$arg` (limit: `$1`),
    best first; a search that finds nothing when there are no terms."""
    if not terms:
        return "SELECT NULL::bigint AS id, NULL::real AS rank WHERE false"
    return (
        f"SELECT id, ts_rank_cd(tsv, q) AS rank FROM {chunks}, "
        f"to_tsquery('english', ${arg}) q WHERE tsv @@ q ORDER BY rank DESC, id LIMIT $1"
    )


async def pgvector_candidates(
    pool: asyncpg.Pool,
    chunks: str,
    documents: str,
    terms: str,
    vector_text: str,
    dimension: int,
    limit: int,
) -> Candidates:
    """Both searches, similarities and rows in one query (tables `chunks` and `documents`)."""
    d = dimension
    v, e = f"$2::halfvec({d})", f"c.embedding::halfvec({d})"
    sql = (
        f"WITH dense AS (SELECT id FROM {chunks} c WHERE vector_dims(c.embedding) = {d} "
        f"ORDER BY {e} <=> {v} LIMIT $1), lex AS ({lexical_sql(chunks, terms, 3)}) "
        "SELECT c.id, c.document_id, d.title, d.source, d.url, c.text, c.heading, c.page, "
        "c.sentences, "
        f"CASE WHEN vector_dims(c.embedding) = {d} THEN 1 - ({e} <=> {v}) END AS similarity, "
        "c.id IN (SELECT id FROM dense) AS by_meaning, lex.rank "
        f"FROM {chunks} c JOIN {documents} d ON d.id = c.document_id "
        "LEFT JOIN lex ON lex.id = c.id "
        "WHERE c.id IN (SELECT id FROM dense UNION SELECT id FROM lex)"
    )
    args: list[object] = [limit, vector_text, *([terms] if terms else [])]
    async with pool.acquire() as conn:
        if limit > EF_SEARCH:
            await conn.execute(f"SET hnsw.ef_search = {int(limit)}")
        rows = await conn.fetch(sql, *args)
    similarity = {int(r["id"]): float(r["similarity"]) for r in rows if r["similarity"] is not None}
    dense = [(i, similarity[i]) for i in (int(r["id"]) for r in rows if r["by_meaning"])]
    lexical = [(int(r["id"]), float(r["rank"])) for r in rows if r["rank"] is not None]
    return Candidates(
        sorted(dense, key=lambda hit: (-hit[1], hit[0])),
        sorted(lexical, key=lambda hit: (-hit[1], hit[0])),
        similarity,
        {int(r["id"]): StoredChunk(*list(r.values())[:9]) for r in rows},
    )

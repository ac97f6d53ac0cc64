"""Parsing a document is bounded: it runs in a worker process that is killed at the per-file
deadline while the bot's event loop (and /healthz) goes on; a crashing reader or a zip bomb
costs its own file only."""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import RUNTIME, create_app
from bot.knowledge import readers
from bot.knowledge.ingest import Ingestion, IngestLimits
from bot.settings import Settings
from bot.storage.sqlite.knowledge import SqliteKnowledgeStore
from models.embeddings import EmbeddingWorker, HashingEmbeddingModel
from models.fake import FakeChatModel
from tests.knowledge import slow_readers
from tests.knowledge.test_reader_limits import zip_bomb_docx

GOOD = "# Good\n\nThe Aurora-3 warranty lasts seven years.\n"


def skipped_line(lines: list[str], path: Path) -> str:
    found = [line for line in lines if f"skipped {path}:" in line]
    assert len(found) == 1, (path, lines)
    return found[0]


async def test_a_parse_past_the_deadline_is_stopped_while_healthz_keeps_answering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(readers.READERS, ".slow", slow_readers.gil_holding_reader)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a-stuck.slow").write_text("anything")
    (docs / "b-good.md").write_text(GOOD)
    settings = Settings(storage=f"sqlite:///{tmp_path}/state.db", knowledge_parse_timeout_s=2.0)
    app = create_app(settings, model=FakeChatModel(), embedding_model=HashingEmbeddingModel())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        knowledge = app[RUNTIME].knowledge
        lines: list[str] = []
        started = time.monotonic()
        indexing = asyncio.create_task(knowledge.ingestion(progress=lines.append).add([docs]))
        slowest = 0.0
        while not indexing.done():
            asked = time.monotonic()
            response = await client.get("/healthz")
            assert response.status == 200
            slowest = max(slowest, time.monotonic() - asked)
            await asyncio.sleep(0.05)
        report = await indexing
        took = time.monotonic() - started
        assert slowest < 0.5, f"/healthz took {slowest:.2f} s while a document was parsed"
        assert took < 8.0, f"the stuck parse was not stopped at its deadline ({took:.1f} s)"
        assert "parsing took longer than 2 s" in skipped_line(lines, docs / "a-stuck.slow")
        assert report.added == 1
        assert [Path(d.source).name for d in await knowledge.store.documents()] == ["b-good.md"]
    finally:
        await client.close()
    assert not multiprocessing.active_children()


async def test_a_reader_that_kills_its_process_costs_its_file_only(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ingestion: Ingestion,
    store: SqliteKnowledgeStore,
    lines: list[str],
) -> None:
    monkeypatch.setitem(readers.READERS, ".crash", slow_readers.crashing_reader)
    (tmp_path / "a.crash").write_text("anything")
    (tmp_path / "b.md").write_text(GOOD)
    (tmp_path / "c.md").write_text("# C\n\nCharlie.\n")
    report = await ingestion.add([tmp_path])
    assert "the parser process died (exit code 3)" in skipped_line(lines, tmp_path / "a.crash")
    assert report.added == 2


async def test_cancelled_indexing_stops_its_parser_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: SqliteKnowledgeStore, embedder
) -> None:
    monkeypatch.setitem(readers.READERS, ".slow", slow_readers.gil_holding_reader)
    (tmp_path / "stuck.slow").write_text("anything")
    ingestion = Ingestion(store, embedder)  # the default deadline: a minute
    indexing = asyncio.create_task(ingestion.add([tmp_path]))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if multiprocessing.active_children():
            break
    assert multiprocessing.active_children()
    indexing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await indexing
    for _ in range(100):
        if not multiprocessing.active_children():
            break
        await asyncio.sleep(0.05)
    assert not multiprocessing.active_children()


async def test_a_zip_bomb_docx_in_a_folder_is_skipped_and_the_rest_indexed(
    tmp_path: Path, store: SqliteKnowledgeStore, embedder: EmbeddingWorker, lines: list[str]
) -> None:
    (tmp_path / "bomb.docx").write_bytes(zip_bomb_docx(64 * 1024 * 1024))
    (tmp_path / "good.md").write_text(GOOD)
    limits = IngestLimits(max_unpacked_bytes=16 * 1024 * 1024)
    report = await Ingestion(store, embedder, limits=limits, progress=lines.append).add([tmp_path])
    assert "unpacks to more than 16 MB" in skipped_line(lines, tmp_path / "bomb.docx")
    assert report.added == 1


@pytest.mark.skipif(sys.platform != "linux", reason="the address-space cap is Linux's RLIMIT_AS")
async def test_a_document_needing_more_memory_than_the_cap_costs_its_file_only(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store: SqliteKnowledgeStore,
    embedder: EmbeddingWorker,
    lines: list[str],
) -> None:
    monkeypatch.setitem(readers.READERS, ".hungry", slow_readers.memory_hungry_reader)
    (tmp_path / "a.hungry").write_text("anything")
    (tmp_path / "b.md").write_text(GOOD)
    limits = IngestLimits(parse_memory_bytes=512 * 1024 * 1024)
    report = await Ingestion(store, embedder, limits=limits, progress=lines.append).add([tmp_path])
    assert "out of memory while parsing" in skipped_line(lines, tmp_path / "a.hungry")
    assert report.added == 1

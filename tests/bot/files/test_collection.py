"""A conversation's files in storage: one write per file, bounded in time, files and chunks, and
searched like the knowledge index."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from botbuilder.core import MemoryStorage

from bot.app import create_app
from bot.files.collection import CollectionLimits, FileCollections, NewFile
from bot.knowledge.retriever import HybridRetriever
from bot.settings import Settings
from models.embeddings import EmbeddingWorker, HashingEmbeddingModel
from models.fake import FakeChatModel
from tests.bot.files.conftest import fare_pdf, send
from tests.bot.storage.test_storage import STORAGES, Opener, close
from tests.connector import FakeConnector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def new_file(name: str, texts: list[str], model: HashingEmbeddingModel) -> NewFile:
    vectors = np.asarray(model.embed([f"{name}\n{t}" for t in texts]), dtype=np.float32)
    return NewFile(name, None, [(t, "", None) for t in texts], vectors, model.name)


async def test_files_expire_and_the_oldest_go_first() -> None:
    model, clock, storage = HashingEmbeddingModel(), Clock(), MemoryStorage()
    files = FileCollections(storage, CollectionLimits(ttl_s=100, max_files=2, max_chunks=3), clock)
    await files.add("k", await new_file("a.md", ["alpha one", "alpha two"], model))
    clock.now += 60
    await files.add("k", await new_file("b.md", ["beta"], model))
    assert await files.names("k") == ["a.md", "b.md"]
    clock.now += 10
    await files.add("k", await new_file("c.md", ["gamma", "gamma two"], model))
    assert await files.names("k") == ["b.md", "c.md"], "three chunks at most: a.md went"
    chunks = await files.chunks("k")
    assert [c.text for c in chunks.chunks] == ["beta", "gamma", "gamma two"]
    assert chunks.vectors.shape == (3, model.dimension)
    clock.now = 1165  # b.md was added at 1060, c.md at 1070: b.md is older than the TTL
    assert await files.names("k") == ["c.md"]
    assert await files.names("other") == []
    assert await files.forget("k") == 1 and await files.names("k") == []


async def test_the_chunks_are_searched_with_the_hybrid_retriever() -> None:
    model = HashingEmbeddingModel()
    files = FileCollections(MemoryStorage())
    texts = [
        "The night fare is 42 crowns.",
        "Dogs are welcome on deck.",
        "Form RW-7 is for refunds.",
    ]
    await files.add("k", await new_file("fares.md", texts, model))
    worker = EmbeddingWorker(model)
    try:
        retriever = HybridRetriever(await files.chunks("k"), worker)  # type: ignore[arg-type]
        [found, *_] = await retriever.search("Which form for refunds? RW-7", 3)
    finally:
        worker.close()
    assert found.text == "Form RW-7 is for refunds." and found.title == "fares.md"


class FailingEmbedder(HashingEmbeddingModel):
    """Fails on the chunks of the fare rules (after they were fetched and read)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if any("42 crowns" in text for text in texts):
            raise RuntimeError("the embedder failed half-way")
        return super().embed(texts)


async def test_a_file_that_fails_half_way_leaves_nothing(
    files_settings: Settings, connector: FakeConnector, model: FakeChatModel
) -> None:
    app = create_app(files_settings, model=model, embedding_model=FailingEmbedder())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        url = connector.serve_file("fare-rules.pdf", fare_pdf(), "application/pdf")
        attachment = {"contentType": "application/pdf", "contentUrl": url, "name": "fare-rules.pdf"}
        [reply] = await send(client, connector, None, attachments=[attachment])
        assert reply["text"].startswith("Sorry, I couldn't read fare-rules.pdf.")
        [none] = await send(client, connector, "/forget files")
        assert none["text"] == "There are no files in this conversation."
    finally:
        await client.close()


@pytest.fixture(params=sorted(STORAGES))
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    async with STORAGES[request.param](tmp_path) as open_one:
        yield open_one


async def test_every_replica_sees_the_files(place: Opener) -> None:
    """Two replicas (their own storage clients on one database): a file one of them read is
    searched by the other, and forgotten for both."""
    model = HashingEmbeddingModel()
    first, second = place(), place()
    try:
        await FileCollections(first).add("k", await new_file("a.md", ["alpha", "beta"], model))
        other = FileCollections(second)
        chunks = await other.chunks("k")
        assert [c.text for c in chunks.chunks] == ["alpha", "beta"]
        assert np.allclose(chunks.vectors, model.embed(["a.md\nalpha", "a.md\nbeta"]))
        assert await other.forget("k") == 1
        assert await FileCollections(first).names("k") == []
    finally:
        await close(first)
        await close(second)


async def test_a_sweep_drops_the_expired_files_of_conversations_that_never_came_back(
    place: Opener,
) -> None:
    """Without a later write to the conversation, its file would stay in the store: the hourly
    sweep (any replica, each hour once) drops it, and leaves a newer file and other data."""
    storage, second = place(), place()
    model, clock = HashingEmbeddingModel(), Clock()
    clock.now = 7200.0 * 24
    limits = CollectionLimits(ttl_s=3600)
    files, other_replica = (
        FileCollections(storage, limits, clock),
        FileCollections(storage, limits, clock),
    )
    try:
        assert await files.sweep() == 0  # the first sweep starts the hours from now
        await files.add("gone", await new_file("fares.md", ["fare rule"], model))
        await files.add("kept", await new_file("old.md", ["old"], model))
        clock.now += 3 * 3600
        await files.add("kept", await new_file("new.md", ["new"], model))  # drops old.md itself
        await files.add("late", await new_file("late.md", ["late"], model))
        assert await other_replica.sweep() == 1  # "gone" alone still held an expired file
        stored = await storage.read(["gone", "kept", "late"])
        assert stored["gone"]["files"] == [] and stored["gone"]["chunks"] == []
        assert "fare rule" not in str(stored["gone"])
        assert [f["name"] for f in stored["kept"]["files"]] == ["new.md"]
        assert [f["name"] for f in stored["late"]["files"]] == ["late.md"]
        assert await files.sweep() == 0  # those hours are swept: nothing again
        clock.now += 2 * 3600
        assert await files.sweep() == 2  # new.md and late.md expired now
        assert await files.names("kept") == [] and await files.names("late") == []
    finally:
        await close(storage)
        await close(second)

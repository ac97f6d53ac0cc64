"""Ingestion is incremental (by content hash), BOTLOOM_KNOWLEDGE is indexed at start, and the
`botloom knowledge` commands work on the state's own SQLite file."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import RUNTIME, create_app
from bot.cli import main
from bot.knowledge.ingest import Ingestion
from bot.settings import Settings
from bot.storage.sqlite.knowledge import SqliteKnowledgeStore
from models.embeddings import HashingEmbeddingModel
from models.fake import FakeChatModel
from tests.knowledge.conftest import EVAL_DOCS


async def test_unchanged_files_are_not_embedded_again_and_removed_ones_leave(
    tmp_path: Path,
    ingestion: Ingestion,
    store: SqliteKnowledgeStore,
    hashing: HashingEmbeddingModel,
) -> None:
    (tmp_path / "a.md").write_text("# A\n\nAlpha.\n")
    (tmp_path / "b.md").write_text("# B\n\nBravo.\n")
    first = await ingestion.sync([tmp_path])
    assert (first.added, first.chunks) == (2, 2)
    embedded = hashing.texts_embedded
    again = await ingestion.sync([tmp_path])
    assert (again.unchanged, again.chunks, hashing.texts_embedded) == (2, 0, embedded)
    (tmp_path / "a.md").write_text("# A\n\nAlpha, revised.\n")
    (tmp_path / "b.md").unlink()
    changed = await ingestion.sync([tmp_path])
    assert (changed.updated, changed.removed, changed.chunks) == (1, 1, 1)
    assert hashing.texts_embedded == embedded + 2, "the chunk, and its one sentence"
    assert [Path(d.source).name for d in await store.documents()] == ["a.md"]


async def test_a_long_ingestion_reports_progress(
    tmp_path: Path, store: SqliteKnowledgeStore, embedder, lines: list[str]
) -> None:
    from bot.knowledge.ingest import IngestLimits

    for i in range(30):
        (tmp_path / f"n{i}.md").write_text(f"# N{i}\n\nText {i}.\n")
    limits = IngestLimits(progress_every_s=0.0)
    await Ingestion(store, embedder, limits=limits, progress=lines.append).add([tmp_path])
    progress = [line for line in lines if "files so far" in line]
    assert progress and progress[-1].startswith("knowledge: 30 files so far; 30 added")


async def test_botloom_knowledge_is_indexed_when_the_bot_starts(tmp_path: Path) -> None:
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/state.db", knowledge=(str(EVAL_DOCS), str(tmp_path / "gone"))
    )
    app = create_app(settings, model=FakeChatModel(), embedding_model=HashingEmbeddingModel())
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        store = app[RUNTIME].knowledge.store
        for _ in range(200):
            if len(await store.documents()) == 6:
                break
            await asyncio.sleep(0.05)
        assert len(await store.documents()) == 6
    finally:
        await client.close()


def test_the_knowledge_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOTLOOM_STORAGE", f"sqlite:///{tmp_path}/state.db")
    monkeypatch.setenv("BOTLOOM_EMBEDDING_MODEL", "hashing")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    assert main(["knowledge", "add", str(EVAL_DOCS), str(tmp_path / "bad.pdf")]) == 1
    out = capsys.readouterr().out
    assert f"skipped {tmp_path / 'bad.pdf'}: not a readable PDF" in out
    assert "6 added, 0 updated, 0 unchanged, 0 removed, 1 skipped" in out
    assert main(["knowledge", "list"]) == 0
    listing = capsys.readouterr().out
    assert "Kestrelmoor product sheet" in listing and listing.endswith("6 documents\n")
    assert main(["knowledge", "search", "form RW-7", "--limit", "2"]) == 0
    found = capsys.readouterr().out.splitlines()
    assert found[0].startswith("chunk: the whole passage's similarity to the question")
    assert "under 0.44 and whole chunk under 0.50 answers nothing asked" in found[4]
    first = re.fullmatch(r"1\. sentence (\d\.\d{3})  chunk (\d\.\d{3})  by (\S+)  (.*)", found[5])
    assert first is not None, found[5]
    assert first.group(3) == "words+meaning", "the code is found by both searches"
    assert "staff handbook [Remote work]" in first.group(4)
    assert first.group(4).endswith("(passes the chunk threshold)")
    assert "RW-7" in found[6], "the passage's best sentences"
    assert found[7].startswith("2. sentence ")
    assert main(["knowledge", "remove", str(EVAL_DOCS / "handbook.md"), "nothing"]) == 1
    assert "not in the index: nothing" in capsys.readouterr().out
    main(["knowledge", "list"])
    assert capsys.readouterr().out.endswith("5 documents\n")


def test_settings_name_the_knowledge_store(tmp_path: Path) -> None:
    from bot.knowledge.setup import knowledge_store_url

    base = Settings(storage="redis://localhost:6379/0")
    assert knowledge_store_url(base) == "sqlite:///data/knowledge.db"
    assert knowledge_store_url(dataclasses.replace(base, storage="memory://")) == (
        "sqlite:///:memory:"
    )
    pg = dataclasses.replace(base, knowledge_store="postgresql://db/kb")
    assert knowledge_store_url(pg) == "postgresql://db/kb"


@pytest.mark.parametrize(
    "url", ["memory://", "redis://:s3cret@cache:6379/0", "sqlite://data/kb.db", "mysql://db/kb"]
)
def test_the_knowledge_store_lives_in_sqlite_or_postgresql_only(url: str) -> None:
    from bot.knowledge.setup import knowledge_store

    with pytest.raises(ValueError, match="BOTLOOM_KNOWLEDGE_STORE must be sqlite") as raised:
        knowledge_store(url)
    assert "s3cret" not in str(raised.value)


class SlowHashing(HashingEmbeddingModel):
    """The hashing embedder taking 10 ms per call, recording each call's texts."""

    def __init__(self) -> None:
        import threading

        super().__init__()
        self.made: list[list[str]] = []
        self.indexing = threading.Event()  # set by the first call of several texts

    def embed(self, texts):  # type: ignore[no-untyped-def]
        import time

        time.sleep(0.01)
        self.made.append(list(texts))
        if len(texts) > 1:
            self.indexing.set()
        return super().embed(texts)


async def test_a_question_asked_while_a_large_document_is_indexed_waits_for_one_slice(
    tmp_path: Path, store: SqliteKnowledgeStore
) -> None:
    """The texts of a large document are embedded in slices: a question's embedding is served
    between two of them, not after the whole document."""
    from bot.knowledge.ingest import EMBED_SLICE, IngestLimits
    from models.embeddings import EmbeddingWorker

    model = SlowHashing()
    worker = EmbeddingWorker(model)
    try:
        sentences = " ".join(f"Rule {i} says the fee is {i} pounds." for i in range(400))
        (tmp_path / "big.md").write_text(f"# Fees\n\n{sentences}\n")
        ingestion = Ingestion(store, worker, limits=IngestLimits(), progress=lambda line: None)
        indexing = asyncio.create_task(ingestion.add([tmp_path / "big.md"]))
        assert await asyncio.to_thread(model.indexing.wait, 30)
        await worker.embed(["What is the fee?"])
        await indexing
        asked = model.made.index(["What is the fee?"])
        assert max(len(call) for call in model.made) <= EMBED_SLICE
        assert asked < len(model.made) - 3, "served between slices, long before the last"
    finally:
        worker.close()

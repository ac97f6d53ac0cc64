"""Bad files are skipped with one line naming them and why; the rest is indexed; a document is
written whole or not at all, so the previous version stays searchable."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pypdf
import pytest

from bot.knowledge.ingest import Ingestion
from bot.storage.knowledge import ChunkRecord, DocumentRecord
from bot.storage.sqlite.knowledge import SqliteKnowledgeStore
from models.embeddings import EmbeddingWorker, HashingEmbeddingModel
from tests.knowledge.pdf_files import text_pdf

GOOD = "# Good\n\nThe Aurora-3 warranty lasts seven years.\n"


def encrypted_pdf() -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(text_pdf([["Secret."]]))))
    writer.encrypt(user_password="hunter2", owner_password="owner")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def skipped_line(lines: list[str], path: Path) -> str:
    found = [line for line in lines if f"skipped {path}:" in line]
    assert len(found) == 1, (path, lines)
    return found[0]


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("corrupt.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R", "not a readable PDF"),
        ("truncated.pdf", text_pdf([["Hello world."]])[:120], "not a readable PDF"),
        ("locked.pdf", encrypted_pdf(), "encrypted PDF"),
        ("binary.txt", bytes(range(256)) * 64, "binary content"),
        ("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\xff" * 500, "binary content"),
        ("empty.md", b"", "empty file"),
        ("blank.txt", b"\n\n   \n", "empty file"),
        ("broken.docx", b"PK\x03\x04 this is not a zip archive", "not a readable .docx"),
        ("nothing.html", b"<html><script>var x = 1;</script></html>", "no text"),
    ],
    ids=lambda value: value if isinstance(value, str) and "." in value else "",
)
async def test_each_bad_file_is_skipped_with_one_line_and_the_rest_indexed(
    tmp_path: Path,
    ingestion: Ingestion,
    store: SqliteKnowledgeStore,
    lines: list[str],
    name: str,
    content: bytes,
    why: str,
) -> None:
    bad = tmp_path / "docs" / name
    bad.parent.mkdir()
    bad.write_bytes(content)
    (tmp_path / "docs" / "good.md").write_text(GOOD)
    report = await ingestion.add([tmp_path / "docs"])
    assert why in skipped_line(lines, bad)
    assert report.skipped == [(str(bad), report.skipped[0][1])]
    assert [Path(d.source).name for d in await store.documents()] == ["good.md"]


async def test_a_200_mb_file_is_skipped_without_being_read(
    tmp_path: Path, ingestion: Ingestion, store: SqliteKnowledgeStore, lines: list[str]
) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as file:
        file.truncate(200 * 1024 * 1024)  # sparse: no 200 MB written to the disk
    (tmp_path / "good.md").write_text(GOOD)
    await ingestion.add([huge, tmp_path / "good.md"])
    assert "200 MB is over the 50 MB limit" in skipped_line(lines, huge)
    assert len(await store.documents()) == 1


async def test_a_folder_of_10000_files_is_indexed_with_its_bad_files_skipped(
    tmp_path: Path,
    ingestion: Ingestion,
    store: SqliteKnowledgeStore,
    lines: list[str],
) -> None:
    folder = tmp_path / "many"
    for group in range(100):
        sub = folder / f"group{group:03d}"
        sub.mkdir(parents=True)
        for item in range(100):
            (sub / f"note{item:03d}.md").write_text(
                f"# Note {group}-{item}\n\nPart code PX-{group}-{item}.\n"
            )
    bad = [folder / "group007" / "note013.md", folder / "group042" / "note099.md"]
    bad[0].write_bytes(b"\x00\x01\x02" * 100)
    bad[1].write_bytes(b"")
    report = await ingestion.add([folder])
    assert report.added == 9998 and len(report.skipped) == 2
    for path in bad:
        skipped_line(lines, path)
    assert await store.chunk_count() == 9998
    found = await store.lexical("PX-42-17", 3)
    assert [c.title for c in await store.chunks([found[0][0]])] == ["Note 42-17"]
    assert any("files so far" in line for line in lines) or report.seconds < 5


async def test_a_write_failing_half_way_leaves_the_previous_version(
    store: SqliteKnowledgeStore,
) -> None:
    model = HashingEmbeddingModel()
    old = [ChunkRecord("The old price is 10 euros.", "", None, 0)]
    record = DocumentRecord("doc1", "/docs/price.md", "Prices", "", "sha-old", model.name)
    await store.replace_document(record, old, model.embed([c.text for c in old]))
    new = [ChunkRecord(f"New part {i}.", "", None, i) for i in range(5)]
    new[3] = ChunkRecord("Broken \ud800 text.", "", None, 3)  # fails inside the transaction
    vectors = np.ones((5, model.dimension), dtype=np.float32) / np.sqrt(model.dimension)
    with pytest.raises(UnicodeEncodeError):
        await store.replace_document(
            DocumentRecord("doc1", "/docs/price.md", "Prices", "", "sha-new", model.name),
            new,
            vectors,
        )
    assert (await store.document("/docs/price.md")).sha256 == "sha-old"
    assert await store.chunk_count() == 1
    hits = await store.lexical("old price", 5)
    assert [c.text for c in await store.chunks([i for i, _ in hits])] == [old[0].text]


class FailingEmbedder(HashingEmbeddingModel):
    """Fails when asked to embed a text containing `poison` (a crash mid-ingestion)."""

    def __init__(self, poison: str) -> None:
        super().__init__()
        self.poison = poison

    def embed(self, texts):  # type: ignore[no-untyped-def]
        if any(self.poison in text for text in texts):
            raise RuntimeError("embedding worker died")
        return super().embed(texts)


async def test_a_crash_mid_ingestion_leaves_the_previous_version_searchable(
    tmp_path: Path, store: SqliteKnowledgeStore, ingestion: Ingestion
) -> None:
    (tmp_path / "a.md").write_text("# A\n\nAlpha version one.\n")
    (tmp_path / "b.md").write_text("# B\n\nBravo version one.\n")
    await ingestion.add([tmp_path])
    (tmp_path / "a.md").write_text("# A\n\nAlpha version two.\n")
    (tmp_path / "b.md").write_text("# B\n\nBravo version two POISON.\n")
    worker = EmbeddingWorker(FailingEmbedder("POISON"))
    try:
        with pytest.raises(RuntimeError, match="worker died"):
            await Ingestion(store, worker).add([tmp_path])
    finally:
        worker.close()
    texts = {c.title: c.text for c in await store.chunks(list(range(1, 10)))}
    assert texts == {"A": "Alpha version two.", "B": "Bravo version one."}

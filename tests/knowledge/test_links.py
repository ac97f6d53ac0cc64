"""Links (symlinks) found in an indexed folder: one resolving outside the folder is skipped with
a line saying why and never opened; one resolving inside is followed; a linked folder is never
walked into; a document indexed through a link that now escapes is removed by sync."""

from __future__ import annotations

from pathlib import Path

from bot.knowledge.ingest import Ingestion, document_id
from bot.storage.knowledge import ChunkRecord, DocumentRecord
from bot.storage.sqlite.knowledge import SqliteKnowledgeStore
from models.embeddings import HashingEmbeddingModel
from tests.knowledge.test_parse_bounds import GOOD, skipped_line


def secret_and_docs(tmp_path: Path) -> tuple[Path, Path]:
    """docs/ with a good file, a link to a secret outside it, a link inside it, and a linked
    folder outside it."""
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env").write_text("# Env\n\nBOTLOOM_SECRET is hunter2-zebra-42.\n")
    (app / "more.md").write_text("# More\n\nThe vault code is hunter2-zebra-42.\n")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "good.md").write_text(GOOD)
    (docs / "sub" / "real.md").write_text("# Real\n\nReal text inside.\n")
    (docs / "notes.md").symlink_to(app / ".env")
    (docs / "inside.md").symlink_to(docs / "sub" / "real.md")
    (docs / "shared").symlink_to(app, target_is_directory=True)
    return docs, app


async def test_a_link_to_a_file_outside_the_folder_is_not_indexed_and_a_line_says_why(
    tmp_path: Path, ingestion: Ingestion, store: SqliteKnowledgeStore, lines: list[str]
) -> None:
    docs, app = secret_and_docs(tmp_path)
    report = await ingestion.add([docs])
    line = skipped_line(lines, docs / "notes.md")
    assert f"a link to a file outside the indexed folder ({app / '.env'})" in line
    assert "a link to a folder outside the indexed folder" in skipped_line(lines, docs / "shared")
    assert await store.lexical("hunter2 zebra", 5) == []
    indexed = sorted(str(Path(d.source).relative_to(docs)) for d in await store.documents())
    assert indexed == ["good.md", "inside.md", "sub/real.md"], "links inside are followed"
    assert report.added == 3 and len(report.skipped) == 2


async def test_sync_removes_a_document_indexed_through_a_link_that_escapes(
    tmp_path: Path, ingestion: Ingestion, store: SqliteKnowledgeStore
) -> None:
    docs, _ = secret_and_docs(tmp_path)
    model = HashingEmbeddingModel()
    leaked = [ChunkRecord("BOTLOOM_SECRET is hunter2-zebra-42.", "", None, 0)]
    source = str(docs / "notes.md")  # as an earlier version, following the link, indexed it
    record = DocumentRecord(document_id(source), source, "Env", "", "sha", model.name)
    await store.replace_document(record, leaked, model.embed([c.text for c in leaked]))
    report = await ingestion.sync([docs])
    assert report.removed == 1
    assert await store.lexical("hunter2 zebra", 5) == []

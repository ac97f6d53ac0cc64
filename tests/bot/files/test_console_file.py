"""`/file PATH` in `botloom chat`: the local file is read like an upload and answered from."""

from __future__ import annotations

import io
from pathlib import Path

from bot.app import build_runtime
from bot.console import chat
from bot.settings import Settings
from models.embeddings import HashingEmbeddingModel
from models.fake import FakeChatModel
from tests.bot.files.conftest import fare_pdf


async def test_a_local_file_in_the_terminal(
    files_settings: Settings, model: FakeChatModel, tmp_path: Path
) -> None:
    (tmp_path / "fare rules.pdf").write_bytes(fare_pdf())
    lines = f"/file {tmp_path}/fare rules.pdf\nWhat is the night fare?\n/file /no/such.pdf\n"
    runtime = build_runtime(files_settings, model=model, embedding_model=HashingEmbeddingModel())
    output = io.StringIO()
    try:
        await chat(runtime, input_stream=io.StringIO(lines), output=output)
    finally:
        await runtime.aclose()
    transcript = output.getvalue()
    assert "bot> I've read fare rules.pdf. Ask me anything about it." in transcript
    assert "bot> The night fare is 42 crowns per crossing [1]." in transcript
    assert "Sources: [1] fare rules.pdf (page 1)" in transcript
    assert "bot> Usage: /file PATH (a file on this computer)" in transcript

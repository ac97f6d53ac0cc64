"""The batching engine tokenises a prompt off the event loop (issue 12, item 12), with the chat
template's own tokenizer, not the one its generation thread decodes with."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from models.api import ChatMessage, GenerationParams, complete
from models.chat_template import ChatTemplate
from models.engine import BatchedChatModel, EngineConfig
from tests.models.serial import Loaded, load_float64


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    return load_float64(tiny_model_dir, tmp_path_factory.mktemp("cache"))


class RecordingTemplate(ChatTemplate):
    """The real template, recording whether each encode ran on the event loop."""

    on_loop: list[bool]

    def encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        return super().encode(messages)


async def test_the_engine_encodes_prompts_off_the_event_loop(loaded: Loaded) -> None:
    engine = BatchedChatModel(*loaded, name="tiny", stop_token_ids=(), config=EngineConfig())
    template = RecordingTemplate(loaded[1], "tiny")
    template.on_loop = []
    engine._template = template  # the real template, watched
    try:
        params = GenerationParams(max_new_tokens=3, temperature=0)
        replies = await asyncio.gather(
            *(complete(engine, [ChatMessage("user", f"hello {n}")], params) for n in range(3))
        )
    finally:
        engine.close()
    assert all(isinstance(r, str) for r in replies)
    assert template.on_loop == [False, False, False]
    assert template.tokenizer is not loaded[1]

"""The paged backend (transformers' ContinuousBatchingManager), run on the CPU with the tiny model.

On a GPU it is the default; here it runs the same code with a small, explicitly sized cache.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from models.api import ChatMessage, GenerationParams, ModelUnavailable, complete
from models.engine import BatchedChatModel, EngineConfig
from models.loading import load_pretrained
from tests.models.serial import Loaded, chat, load_float64, serial_reply

# transformers' continuous batching has no repetition penalty: compare without one.
GREEDY = GenerationParams(max_new_tokens=16, temperature=0.0, repetition_penalty=1.0)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    return load_float64(tiny_model_dir, tmp_path_factory.mktemp("cache"))


def reference(loaded: Loaded, messages: list[ChatMessage]) -> str:
    """Serial greedy `generate`. Call it before a paged engine exists: with transformers 5.17 the
    model runs paged attention, which plain forward passes cannot use, while a manager is up."""
    return serial_reply(loaded, messages, GREEDY)


def make_engine(loaded: Loaded, max_batch: int = 4) -> BatchedChatModel:
    return BatchedChatModel(
        *loaded,
        name="tiny",
        stop_token_ids=(),
        config=EngineConfig(backend="paged", max_batch=max_batch, block_size=8),
        default_params=GREEDY,
    )


async def test_concurrent_replies_are_batched_and_match_serial_generate(loaded: Loaded) -> None:
    questions = ["Hello, how are you?", "What is the weather today?", "hi"]
    expected = [reference(loaded, chat(q)) for q in questions]
    engine = make_engine(loaded)
    try:
        replies = await asyncio.gather(*(complete(engine, chat(q), GREEDY) for q in questions))
    finally:
        engine.close()
    assert replies == expected
    assert engine.stats.max_rows > 1


async def test_the_next_turn_shares_whole_blocks_of_the_previous_one(loaded: Loaded) -> None:
    first = chat("Hello, how are you?")
    reply = reference(loaded, first)
    second = [*first, ChatMessage("assistant", reply), ChatMessage("user", "And then?")]
    expected = reference(loaded, second)
    engine = make_engine(loaded)
    try:
        assert await complete(engine, first, GREEDY) == reply
        before = engine.stats.reused_tokens
        assert await complete(engine, second, GREEDY) == expected
        shared = engine.stats.reused_tokens - before
        assert shared % 8 == 0
        assert shared >= engine.count_tokens(second) // 2
    finally:
        engine.close()


async def test_a_closed_stream_is_cancelled_and_the_model_is_usable_after_close(
    loaded: Loaded,
) -> None:
    model = make_engine(loaded, max_batch=2)
    try:
        stream = model.stream(chat("hi"), GenerationParams(max_new_tokens=300, temperature=0.0))
        await anext(stream)
        await stream.aclose()
        assert model.stats.cancelled == 1
        assert model.admitted == 0
    finally:
        model.close()
    with pytest.raises(ModelUnavailable):
        await complete(model, chat("hi"), GREEDY)
    assert reference(loaded, chat("hi"))  # plain forward passes work again (5.17: restored)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
async def test_on_cuda_replies_are_batched_and_turns_share_blocks(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model, tokenizer = load_pretrained(str(tiny_model_dir), cache_dir=tmp_path, device="cuda")
    engine = BatchedChatModel(
        model,
        tokenizer,
        name="tiny",
        stop_token_ids=(),
        config=EngineConfig(max_batch=4, kv_cache_blocks=256, max_batch_tokens=512),
        default_params=GREEDY,
    )
    try:
        first = chat("Hello, how are you?")
        replies = await asyncio.gather(*(complete(engine, first, GREEDY) for _ in range(3)))
        assert len(set(replies)) == 1 and replies[0]
        second = [*first, ChatMessage("assistant", replies[0]), ChatMessage("user", "And then?")]
        before = engine.stats.reused_tokens
        await complete(engine, second, GREEDY)
        assert engine.stats.reused_tokens - before >= engine.count_tokens(second) // 2
    finally:
        engine.close()

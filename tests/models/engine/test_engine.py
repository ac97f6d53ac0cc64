from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from models.api import (
    ChatMessage,
    ChatModel,
    GenerationParams,
    ModelError,
    ModelOverloaded,
    ModelUnavailable,
    complete,
)
from models.chat_template import ChatTemplate
from models.engine import BatchedChatModel, EngineConfig, create_batcher, load_engine_model
from models.hf import HuggingFaceChatModel
from models.loading import load_pretrained
from tests.loop_ticks import LoopTicks
from tests.models.serial import Loaded, chat, load_float64, serial_reply

# A strong repetition penalty makes the tiny random model's greedy replies differ from prompt to
# prompt, so that a reply delivered to the wrong stream would be noticed.
GREEDY = GenerationParams(max_new_tokens=24, temperature=0.0, repetition_penalty=2.0)
QUESTIONS = (
    "Hello, how are you?",
    "What is the weather today?",
    "Tell me a story about a cat, please.",
    "hi",
)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    return load_float64(tiny_model_dir, tmp_path_factory.mktemp("cache"))


def make_engine(loaded: Loaded, **config: Any) -> BatchedChatModel:
    return BatchedChatModel(*loaded, name="tiny", stop_token_ids=(), config=EngineConfig(**config))


@pytest.fixture
def engine(loaded: Loaded) -> Iterator[BatchedChatModel]:
    model = make_engine(loaded, max_batch=4, max_waiting=4)
    yield model
    model.close()


async def wait_until(condition: Any, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


# --- the interface ---------------------------------------------------------------------------


def test_is_a_chat_model_that_counts_tokens_like_the_serial_one(
    engine: BatchedChatModel, loaded: Loaded
) -> None:
    serial = HuggingFaceChatModel(*loaded, name="tiny")
    assert isinstance(engine, ChatModel)
    assert engine.name == "tiny"
    assert engine.context_window == serial.context_window == 512
    assert engine.count_tokens(chat("hello")) == serial.count_tokens(chat("hello"))


# --- batching --------------------------------------------------------------------------------


async def test_concurrent_replies_are_batched_and_each_stream_gets_its_own(
    engine: BatchedChatModel, loaded: Loaded
) -> None:
    replies = await asyncio.gather(*(complete(engine, chat(q), GREEDY) for q in QUESTIONS))

    expected = [serial_reply(loaded, chat(q), GREEDY) for q in QUESTIONS]
    assert replies == expected
    assert len(set(expected)) == len(QUESTIONS)  # a mix-up could not go unnoticed
    assert engine.stats.max_rows == len(QUESTIONS)
    assert engine.stats.batched_steps >= GREEDY.max_new_tokens - 2
    assert engine.tokens_generated == len(QUESTIONS) * GREEDY.max_new_tokens


async def test_a_request_joins_a_batch_in_progress(
    engine: BatchedChatModel, loaded: Loaded
) -> None:
    long_params = GenerationParams(max_new_tokens=40, temperature=0.0, repetition_penalty=2.0)
    first = engine.stream(chat(QUESTIONS[3]), long_params)
    pieces = [await anext(first) for _ in range(3)]
    # A longer prompt joins while the first reply is under way: both rows are re-padded.
    second = await complete(engine, chat(QUESTIONS[2] * 3), GREEDY)
    pieces.extend([piece async for piece in first])

    assert "".join(pieces) == serial_reply(loaded, chat(QUESTIONS[3]), long_params)
    assert second == serial_reply(loaded, chat(QUESTIONS[2] * 3), GREEDY)
    assert engine.stats.max_rows == 2


async def test_each_row_keeps_its_own_sampling_settings(
    engine: BatchedChatModel, loaded: Loaded
) -> None:
    plain = GenerationParams(max_new_tokens=24, temperature=0.0, repetition_penalty=1.0)
    sampled = GenerationParams(max_new_tokens=24, temperature=1.0, top_p=0.9)
    replies = await asyncio.gather(
        complete(engine, chat(QUESTIONS[0]), GREEDY),
        complete(engine, chat(QUESTIONS[1]), plain),
        complete(engine, chat(QUESTIONS[2]), sampled),
    )
    assert replies[0] == serial_reply(loaded, chat(QUESTIONS[0]), GREEDY)
    assert replies[1] == serial_reply(loaded, chat(QUESTIONS[1]), plain)
    assert engine.stats.max_rows == 3


# --- where replies end -----------------------------------------------------------------------


async def test_max_new_tokens_and_stop_tokens_end_replies(
    engine: BatchedChatModel, loaded: Loaded
) -> None:
    await complete(engine, chat("hi"), GenerationParams(max_new_tokens=7, temperature=0.0))
    assert engine.tokens_generated == 7

    model, tokenizer = loaded
    prompt = ChatTemplate(tokenizer, "tiny").encode(chat("hi"))
    with torch.inference_mode():
        first_id = int(model(torch.tensor([prompt])).logits[0, -1].argmax())
    # The greedy first token plays the part of EOS: the reply ends at once and is empty.
    stopping = BatchedChatModel(model, tokenizer, name="tiny", stop_token_ids=(first_id,))
    try:
        assert await complete(stopping, chat("hi"), GREEDY) == ""
        assert stopping.tokens_generated == 1
    finally:
        stopping.close()


async def test_a_stop_string_cuts_the_reply_and_ends_its_row(engine: BatchedChatModel) -> None:
    full = await complete(engine, chat(QUESTIONS[0]), GREEDY)
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    generated = engine.tokens_generated

    params = GenerationParams(
        max_new_tokens=24, temperature=0.0, repetition_penalty=2.0, stop=(stop,)
    )
    assert await complete(engine, chat(QUESTIONS[0]), params) == full[: full.index(stop)]
    assert engine.tokens_generated - generated < GREEDY.max_new_tokens


async def test_replies_end_at_the_context_window(loaded: Loaded) -> None:
    prompt = HuggingFaceChatModel(*loaded, name="tiny").count_tokens(chat("hi"))
    model = BatchedChatModel(*loaded, name="tiny", stop_token_ids=(), context_window=prompt + 5)
    try:
        await complete(model, chat("hi"), GREEDY)
        assert model.tokens_generated == 5
        with pytest.raises(ModelError, match="context window"):
            await complete(model, [*chat("hi"), ChatMessage("user", "one more")], GREEDY)
    finally:
        model.close()


# --- admission and cancellation --------------------------------------------------------------


async def test_closing_a_stream_frees_its_slot_for_a_waiting_request(
    loaded: Loaded, slow_steps: list[int]
) -> None:
    model = make_engine(loaded, max_batch=1, max_waiting=1)
    try:
        running = model.stream(chat("hi"), GenerationParams(max_new_tokens=400, temperature=0.0))
        await anext(running)
        waiting = asyncio.create_task(complete(model, chat(QUESTIONS[0]), GREEDY))
        await wait_until(lambda: model.admitted == 2)
        await asyncio.sleep(0.1)
        assert not waiting.done()  # one row only: it waits behind the long reply

        await running.aclose()  # returns once the row has left the batch

        assert model.stats.cancelled == 1
        assert model.admitted == 1
        reply = await asyncio.wait_for(waiting, 5)
        assert reply == serial_reply(loaded, chat(QUESTIONS[0]), GREEDY)
        assert model.tokens_generated < 50 + GREEDY.max_new_tokens
    finally:
        model.close()


async def test_cancelling_the_consumer_stops_its_generation(
    engine: BatchedChatModel, slow_steps: list[int]
) -> None:
    async def consume() -> None:
        async for _ in engine.stream(
            chat("hi"), GenerationParams(max_new_tokens=400, temperature=0.0)
        ):
            pass

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(consume(), timeout=0.2)
    steps = len(slow_steps)
    await asyncio.sleep(0.1)
    assert len(slow_steps) == steps  # nothing runs in the background
    assert engine.stats.cancelled == 1
    assert engine.admitted == 0


async def test_a_full_engine_says_overloaded_at_once(loaded: Loaded, slow_steps: list[int]) -> None:
    model = make_engine(loaded, max_batch=1, max_waiting=1, retry_after_s=3.0)
    long = GenerationParams(max_new_tokens=400, temperature=0.0)
    tasks = [asyncio.create_task(complete(model, chat(q), long)) for q in QUESTIONS[:2]]
    try:
        await wait_until(lambda: model.admitted == 2)
        started = time.perf_counter()
        with pytest.raises(ModelOverloaded) as overloaded:
            await complete(model, chat("one too many"), GREEDY)
        assert time.perf_counter() - started < 0.1
        assert overloaded.value.retry_after == 3.0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        model.close()
    assert model.admitted == 0


# --- prefix reuse ----------------------------------------------------------------------------


async def test_the_next_turn_reuses_the_conversation_kv_cache(loaded: Loaded) -> None:
    reusing = make_engine(loaded)
    plain = make_engine(loaded, prefix_cache_tokens=0)
    try:
        first = chat(QUESTIONS[0])
        reply = await complete(reusing, first, GREEDY)
        assert reply == await complete(plain, first, GREEDY)
        second = [*first, ChatMessage("assistant", reply), ChatMessage("user", "And then?")]
        reused_before = reusing.stats.reused_tokens
        prompt = reusing.count_tokens(second)

        again = await complete(reusing, second, GREEDY)

        assert again == await complete(plain, second, GREEDY)
        assert again == serial_reply(loaded, second, GREEDY)
        saved = reusing.stats.reused_tokens - reused_before
        assert saved >= prompt // 2
        assert (
            reusing.stats.prefill_tokens + reusing.stats.reused_tokens
            == reusing.stats.prompt_tokens
        )
        assert plain.stats.reused_tokens == 0
    finally:
        reusing.close()
        plain.close()


async def test_conversations_share_the_system_prompt(
    engine: BatchedChatModel, loaded: Loaded
) -> None:
    template = ChatTemplate(loaded[1], "tiny")
    one, other = (template.encode(chat(q)) for q in QUESTIONS[:2])
    shared = next(i for i, (a, b) in enumerate(zip(one, other, strict=False)) if a != b)
    assert shared > 10  # the system prompt and the user's role marker

    await complete(engine, chat(QUESTIONS[0]), GREEDY)
    await complete(engine, chat(QUESTIONS[1]), GREEDY)

    assert engine.stats.reused_tokens == shared


async def test_requests_that_join_together_are_prefilled_in_one_pass(
    loaded: Loaded, slow_steps: list[int]
) -> None:
    engine = make_engine(loaded, max_batch=4)
    long = GenerationParams(max_new_tokens=60, temperature=0.0)
    try:
        first = chat(QUESTIONS[0])
        reply = await complete(engine, first, GREEDY)
        second = [*first, ChatMessage("assistant", reply), ChatMessage("user", "And then?")]
        running = engine.stream(chat("hi"), long)
        await anext(running)  # a decode loop is under way: the next two join it together
        passes, reused = engine.stats.prefill_passes, engine.stats.reused_tokens

        # Different prompts, with different amounts of them in the PrefixCache (the whole first
        # turn of one, the system prompt of the other), and suffixes of different lengths.
        replies = await asyncio.gather(
            complete(engine, second, GREEDY), complete(engine, chat(QUESTIONS[2] * 2), GREEDY)
        )
        rest = "".join([piece async for piece in running])

        assert engine.stats.prefill_passes == passes + 1
        assert engine.stats.reused_tokens - reused >= engine.count_tokens(first)
        assert replies == [
            serial_reply(loaded, second, GREEDY),
            serial_reply(loaded, chat(QUESTIONS[2] * 2), GREEDY),
        ]
        assert rest and engine.stats.max_rows == 3
    finally:
        engine.close()


async def test_conversations_starting_together_wait_to_share_their_prompt(
    loaded: Loaded, slow_steps: list[int]
) -> None:
    engine = make_engine(loaded, max_batch=4)
    long = GenerationParams(max_new_tokens=60, temperature=0.0)
    try:
        running = engine.stream([ChatMessage("user", "hi")], long)  # no system prompt
        await anext(running)
        # Both start with a system prompt that is not cached yet: the second waits for the
        # first one's KV cache instead of computing it again.
        replies = await asyncio.gather(*(complete(engine, chat(q), GREEDY) for q in QUESTIONS[:2]))
        await running.aclose()

        assert replies == [serial_reply(loaded, chat(q), GREEDY) for q in QUESTIONS[:2]]
        template = ChatTemplate(loaded[1], "tiny")
        hi, one, other = (
            template.encode(m) for m in [[ChatMessage("user", "hi")], *map(chat, QUESTIONS[:2])]
        )

        def shared(a: list[int], b: list[int]) -> int:
            return next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)

        # The first reuses what it shares with the running prompt, the second the first's.
        assert engine.stats.reused_tokens == shared(hi, one) + shared(one, other)
        assert shared(one, other) > 10
    finally:
        engine.close()


# --- threads, errors, shutdown ----------------------------------------------------------------


async def test_generation_runs_off_the_event_loop(
    engine: BatchedChatModel, slow_steps: list[int]
) -> None:
    async with LoopTicks() as ticks:
        await complete(engine, chat("hi"), GenerationParams(max_new_tokens=10, temperature=0.0))
    assert ticks.count >= 10
    assert slow_steps and threading.get_ident() not in slow_steps


async def test_model_errors_surface_as_model_error_and_the_engine_recovers(
    engine: BatchedChatModel, loaded: Loaded
) -> None:
    def explode(module: Any, args: Any) -> None:
        raise RuntimeError("boom")

    handle = loaded[0].register_forward_pre_hook(explode)
    try:
        with pytest.raises(ModelError, match="boom") as caught:
            await complete(engine, chat("hi"), GREEDY)
    finally:
        handle.remove()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert await complete(engine, chat("hi"), GREEDY) == serial_reply(loaded, chat("hi"), GREEDY)


async def test_close_ends_running_and_waiting_replies(
    loaded: Loaded, slow_steps: list[int]
) -> None:
    model = make_engine(loaded, max_batch=1)
    params = GenerationParams(max_new_tokens=400, temperature=0.0)
    running = model.stream(chat("hi"), params)
    await anext(running)
    waiting = asyncio.create_task(complete(model, chat("hello"), params))
    await wait_until(lambda: model.admitted == 2)

    await asyncio.to_thread(model.close)

    with pytest.raises(ModelUnavailable):
        async for _ in running:
            pass
    with pytest.raises(ModelUnavailable):
        await waiting
    with pytest.raises(ModelUnavailable, match="closed"):
        await complete(model, chat("hi"), GREEDY)


# --- oneDNN-packed weights (float32 on the CPU) -------------------------------------------------


def test_a_float32_model_runs_on_packed_weights_and_the_callers_model_is_untouched(
    tiny_model_dir: Path, tmp_path: Path, loaded: Loaded
) -> None:
    from torch import nn

    from models.engine.dynamic import DynamicBatcher
    from models.engine.packed_linear import PackedLinear, packed_copy

    model, tokenizer = load_pretrained(str(tiny_model_dir), cache_dir=tmp_path)
    assert model.dtype == torch.float32
    packed = packed_copy(model, batch_size=4)
    if packed is None:
        pytest.skip("this PyTorch has no oneDNN linear")
    assert all(type(m) is not nn.Linear for m in packed.modules())
    assert any(isinstance(m, PackedLinear) for m in packed.modules())
    assert any(type(m) is nn.Linear for m in model.modules())  # the caller's model is unchanged
    # Nothing shared: a caller that drops its model frees all of it.
    mine = {t.data_ptr() for t in [*model.parameters(), *model.buffers()]}
    assert not mine & {t.data_ptr() for t in [*packed.parameters(), *packed.buffers()]}
    assert torch.equal(packed.get_input_embeddings().weight, model.get_input_embeddings().weight)

    prompts = torch.tensor(
        [ChatTemplate(tokenizer, "tiny").encode(chat(q))[:12] for q in QUESTIONS]
    )
    with torch.inference_mode():
        expected, got = model(prompts).logits, packed(prompts).logits
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)

    float64 = DynamicBatcher(loaded[0])  # packing is for float32 only
    float32 = DynamicBatcher(model, max_batch=4)
    unpacked = create_batcher(model, EngineConfig(pack_weights=False))
    try:
        assert (float64.packed, float32.packed) == (False, True)
        assert not unpacked.packed  # type: ignore[attr-defined]
    finally:
        for batcher in (float64, float32, unpacked):
            batcher.close()


async def test_a_packed_engine_batches_and_reuses_prefixes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model, tokenizer = load_pretrained(str(tiny_model_dir), cache_dir=tmp_path)
    engine = BatchedChatModel(
        model, tokenizer, name="tiny", stop_token_ids=(), config=EngineConfig(max_batch=4)
    )
    try:
        replies = await asyncio.gather(*(complete(engine, chat(q), GREEDY) for q in QUESTIONS))
        assert engine.stats.max_rows == len(QUESTIONS)
        assert engine.tokens_generated == len(QUESTIONS) * GREEDY.max_new_tokens
        assert all(replies)
        follow_up = [*chat(QUESTIONS[0]), ChatMessage("assistant", replies[0])]
        await complete(engine, [*follow_up, ChatMessage("user", "And then?")], GREEDY)
        assert engine.stats.reused_tokens >= engine.count_tokens(follow_up) // 2
    finally:
        engine.close()


# --- choosing the engine ---------------------------------------------------------------------


def test_the_engine_setting_chooses_batched_or_serial(tiny_model_dir: Path, tmp_path: Path) -> None:
    serial = load_engine_model(str(tiny_model_dir), cache_dir=tmp_path, engine="serial")
    batched = load_engine_model(str(tiny_model_dir), cache_dir=tmp_path, engine="auto")
    try:
        assert isinstance(serial, HuggingFaceChatModel)
        assert isinstance(batched, BatchedChatModel)  # a plain Llama on the CPU batches
    finally:
        serial.close()
        batched.close()
    with pytest.raises(ValueError, match="engine"):
        load_engine_model(str(tiny_model_dir), cache_dir=tmp_path, engine="fast")


def test_engine_settings_are_read_and_checked() -> None:
    from bot.settings import Settings, SettingsError

    settings = Settings.from_env(
        {"BOTLOOM_ENGINE": "serial", "BOTLOOM_MAX_BATCH": "8", "BOTLOOM_MAX_WAITING": "2"},
        env_file=None,
    )
    assert (settings.engine, settings.max_batch, settings.max_waiting) == ("serial", 8, 2)
    assert Settings.from_env({}, env_file=None).engine == "auto"
    with pytest.raises(SettingsError, match="BOTLOOM_ENGINE"):
        Settings.from_env({"BOTLOOM_ENGINE": "turbo"}, env_file=None)

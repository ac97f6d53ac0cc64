"""The CPU path of the engine (issue 16) and its failure and memory bounds (issue 12 items 9, 10):
float16, int4, int8 and bfloat16 weights with the compact decode step, threads, one failing row, the
prefix cache in bytes."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from models.api import ChatMessage, GenerationParams, ModelError, complete
from models.chat_template import ChatTemplate
from models.decoding import ReplyText
from models.engine import BatchedChatModel, EngineConfig
from models.engine.bf16_linear import Bf16Linear, bf16_copy, native_bf16
from models.engine.cpu_model import cpu_threads, kv_bytes_per_token
from models.engine.dynamic import DynamicBatcher
from models.engine.fp16_linear import Fp16Linear, fp16_available, fp16_copy
from models.engine.int4_linear import Int4Linear, int4_available
from models.engine.int8_linear import Int8Linear
from models.engine.prefix_cache import PrefixCache
from models.engine.request import EngineRequest
from models.loading import load_pretrained
from tests.models.serial import Loaded, chat, load_float64, serial_reply

GREEDY = GenerationParams(max_new_tokens=20, temperature=0.0, repetition_penalty=2.0)
QUESTIONS = ("Hello, how are you?", "What is the weather today?", "Tell me a story.", "hi")


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    return load_float64(tiny_model_dir, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def float32(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    return load_pretrained(str(tiny_model_dir), cache_dir=tmp_path_factory.mktemp("cache32"))


# --- int8 weights and the compact decode step ----------------------------------------------------


NATIVE_BF16 = native_bf16()
needs_bf16 = pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no AMX-BF16 / AVX512-BF16")
FP16 = fp16_available()
needs_fp16 = pytest.mark.skipif(not FP16, reason="this PyTorch build has no FBGEMM (not x86)")
needs_int4 = pytest.mark.skipif(
    not (FP16 and int4_available()), reason="no FBGEMM, or no int4 CPU kernel in this torch build"
)


@pytest.mark.parametrize(
    ("weights", "layer"),
    [
        ("int8", Int8Linear),
        pytest.param("int4", Int4Linear, marks=needs_int4),
        pytest.param("bf16", Bf16Linear, marks=needs_bf16),
        pytest.param("fp16", Fp16Linear, marks=needs_fp16),
    ],
)
async def test_a_float32_llama_runs_compact_steps_on_its_weights_like_serial_generate(
    float32: Loaded, weights: str, layer: type[nn.Module]
) -> None:
    model, tokenizer = float32
    config = EngineConfig(max_batch=4, weights=weights)  # type: ignore[arg-type]
    engine = BatchedChatModel(model, tokenizer, name="tiny", stop_token_ids=(), config=config)
    try:
        runner = engine._batcher.runner  # type: ignore[attr-defined]
        assert (runner.weights, runner.compact) == (weights, True)
        assert any(isinstance(m, layer) for m in runner.model.modules())
        assert not any(type(m) is nn.Linear for m in runner.model.modules())
        assert any(type(m) is nn.Linear for m in model.modules())  # the caller's model unchanged
        replies = await asyncio.gather(*(complete(engine, chat(q), GREEDY) for q in QUESTIONS))
        # Batched: how many rows met in one step depends on how fast the first ones ran.
        assert engine.stats.batched_steps > 0 and engine.stats.max_rows >= 2
    finally:
        engine.close()
    if weights == "bf16":
        # Its KV cache is bfloat16, serial generate's float32: against itself one at a time.
        one = BatchedChatModel(
            model,
            tokenizer,
            name="tiny",
            stop_token_ids=(),
            config=EngineConfig(max_batch=1, weights="bf16"),
        )
        try:
            assert replies == [await complete(one, chat(q), GREEDY) for q in QUESTIONS]
        finally:
            one.close()
        return
    # Serial generate on the same weights (transformers' forward, one sequence) agrees.
    converted = (runner.model, tokenizer)
    assert replies == [serial_reply(converted, chat(q), GREEDY) for q in QUESTIONS]


def test_auto_weights_are_fp16_where_fbgemm_runs_else_bf16_else_int8(float32: Loaded) -> None:
    batcher = DynamicBatcher(float32[0], max_batch=4, weights="auto")
    try:
        assert batcher.runner.weights == ("fp16" if FP16 else "bf16" if NATIVE_BF16 else "int8")
        assert batcher.runner.path == "compact"
    finally:
        batcher.close()


@needs_bf16
def test_bf16_fused_parts_give_each_projection_its_columns(float32: Loaded) -> None:
    converted = bf16_copy(float32[0], batch_size=4)
    assert converted is not None
    original, attention = float32[0].model.layers[0].self_attn, converted.model.layers[0].self_attn
    x = torch.randn(2, 5, original.q_proj.in_features)
    with torch.inference_mode():
        for name in ("q_proj", "k_proj", "v_proj", "q_proj"):  # a part twice: computed again
            want = getattr(original, name)(x.bfloat16().float())
            got = getattr(attention, name)(x)
            assert got.shape == want.shape
            assert torch.allclose(got, want, rtol=2e-2, atol=2e-2 * float(want.abs().max()))


@needs_fp16
def test_fp16_layers_keep_float32_activations_and_float16_weights(float32: Loaded) -> None:
    converted = fp16_copy(float32[0])
    assert converted is not None
    original, attention = float32[0].model.layers[0].self_attn, converted.model.layers[0].self_attn
    x = torch.randn(2, 5, original.q_proj.in_features)
    with torch.inference_mode():
        for name in ("q_proj", "k_proj", "v_proj"):
            layer = getattr(original, name)
            got = getattr(attention, name)(x)
            assert got.dtype == torch.float32
            # Exactly the float16-rounded weight times the float32 input, nothing else rounded.
            want = torch.nn.functional.linear(x, layer.weight.half().float(), layer.bias)
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def test_float32_weights_stay_a_setting(float32: Loaded) -> None:
    batcher = DynamicBatcher(float32[0], max_batch=4, weights="float32")
    try:
        assert batcher.runner.weights == "packed" and not batcher.runner.compact
    finally:
        batcher.close()


def test_the_engine_uses_the_cores_it_is_given(tiny_model_dir: Path, tmp_path: Path) -> None:
    from models.engine import load_engine_model

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        model = load_engine_model(str(tiny_model_dir), cache_dir=tmp_path)
        model.close()  # type: ignore[attr-defined]
        assert torch.get_num_threads() == len(os.sched_getaffinity(0)) == cpu_threads()
        assert cpu_threads(3) == 3
    finally:
        torch.set_num_threads(before)


# --- one failing row fails its request alone (issue 12, item 9) ---------------------------------


def _request(loaded: Loaded, question: str, emit: Any, finished: threading.Event) -> EngineRequest:
    tokenizer = loaded[1]
    return EngineRequest(
        prompt_ids=ChatTemplate(tokenizer, "tiny").encode(chat(question)),
        params=GREEDY,
        max_new_tokens=GREEDY.max_new_tokens,
        stop_token_ids=(),
        text=ReplyText(tokenizer, (), (), emit),
        done=lambda error: finished.set(),
    )


def test_a_callback_that_raises_fails_its_request_alone(loaded: Loaded) -> None:
    texts: dict[str, list[str]] = {q: [] for q in QUESTIONS}
    calls = {"n": 0}

    def exploding(piece: str) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the channel went away")

    events = {q: threading.Event() for q in QUESTIONS}
    requests = {
        q: _request(loaded, q, exploding if q == QUESTIONS[1] else texts[q].append, events[q])
        for q in QUESTIONS
    }
    batcher = DynamicBatcher(loaded[0], max_batch=4)
    try:
        for request in requests.values():
            batcher.submit(request)
        assert all(event.wait(60) for event in events.values())
        assert batcher.stats.max_rows == len(QUESTIONS)
    finally:
        batcher.close()
    failed = requests[QUESTIONS[1]].error
    assert isinstance(failed, ModelError) and isinstance(failed.__cause__, RuntimeError)
    for q in (QUESTIONS[0], *QUESTIONS[2:]):
        assert requests[q].error is None
        assert "".join(texts[q]) == serial_reply(loaded, chat(q), GREEDY)


async def test_non_finite_scores_fail_that_request_alone(loaded: Loaded) -> None:
    model, tokenizer = loaded
    poison = "zebra zebra zebra"
    template = ChatTemplate(tokenizer, "tiny")
    others = {t for q in QUESTIONS for t in template.encode(chat(q))}
    poison_id = next(t for t in template.encode(chat(poison)) if t not in others)

    def nan_rows(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
        ids = args[0]
        output = output.clone()
        output[(ids == poison_id).any(dim=-1)] = float("nan")
        return output

    handle = model.get_input_embeddings().register_forward_hook(nan_rows)
    engine = BatchedChatModel(
        model, tokenizer, name="tiny", stop_token_ids=(), config=EngineConfig(max_batch=4)
    )
    try:
        questions = [QUESTIONS[0], poison, QUESTIONS[2]]
        results = await asyncio.gather(
            *(complete(engine, chat(q), GREEDY) for q in questions), return_exceptions=True
        )
        assert engine.stats.max_rows >= 2
    finally:
        engine.close()
        handle.remove()
    assert isinstance(results[1], ModelError) and "not finite" in str(results[1])
    assert results[0] == serial_reply(loaded, chat(QUESTIONS[0]), GREEDY)
    assert results[2] == serial_reply(loaded, chat(QUESTIONS[2]), GREEDY)


# --- memory bounded in bytes (issue 12, item 10) -----------------------------------------------


def test_the_prefix_cache_evicts_by_bytes_and_refuses_what_can_never_fit() -> None:
    def kv(tokens: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(torch.zeros(1, 2, tokens, 4), torch.zeros(1, 2, tokens, 4))]  # 64 B a token

    cache = PrefixCache(max_tokens=10_000, max_bytes=64 * 10)
    cache.store([1, 2, 3, 4], kv(4))
    cache.store([5, 6, 7, 8], kv(4))
    cache.store([9, 10, 11, 12], kv(4))  # 12 tokens > 10: the oldest goes
    assert cache.bytes == 64 * 8 and cache.match([1, 2, 3, 4, 0])[0] == 0
    assert cache.match([5, 6, 7, 8, 0])[0] == 4
    cache.store(list(range(100, 111)), kv(11))  # larger than the whole bound: not kept
    assert cache.bytes == 64 * 8
    assert not cache.fits(11, 64) and cache.fits(10, 64)


async def test_sixteen_long_conversations_keep_the_prefix_cache_under_its_bound(
    loaded: Loaded,
) -> None:
    model, tokenizer = loaded
    per_token = kv_bytes_per_token(model)
    bound = 400 * per_token
    engine = BatchedChatModel(
        model, tokenizer, name="tiny", stop_token_ids=(),
        config=EngineConfig(max_batch=16, prefix_cache_bytes=bound),
    )  # fmt: skip
    batcher: DynamicBatcher = engine._batcher  # type: ignore[assignment]
    highest = 0
    params = GenerationParams(max_new_tokens=16, temperature=0.0, repetition_penalty=1.3)

    async def conversation(n: int) -> None:
        nonlocal highest
        history = [ChatMessage("system", "You are a test bot. " * 8)]
        for turn in range(3):
            history.append(
                ChatMessage("user", f"Conversation {n}, turn {turn}: tell me more. " * 3)
            )
            reply = await complete(engine, history, params)
            history.append(ChatMessage("assistant", reply))
            highest = max(highest, batcher.prefixes.bytes)

    try:
        await asyncio.gather(*(conversation(n) for n in range(16)))
        assert engine.stats.max_rows >= 8
        stored = engine.stats.prompt_tokens  # what an unbounded cache would have been offered
    finally:
        engine.close()
    assert stored * per_token > 3 * bound  # the bound mattered
    assert 0 < highest <= bound
    assert engine.stats.reused_tokens > 0  # and the cache still served turns

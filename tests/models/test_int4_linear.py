"""The int4 weights of the CPU path (issue 28): the embedded default's Q4_1 blocks kept as they are
in torch's int4 CPU layout, 4-bit checkpoints told apart, "auto" and the group size."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFReader
from gguf.quants import dequantize
from torch import nn

from models.api import ChatMessage, GenerationParams, complete
from models.embedded import embedded_gguf_path
from models.engine import BatchedChatModel, EngineConfig
from models.engine.cpu_model import prepare_model
from models.engine.fp16_linear import Fp16Linear, fp16_available
from models.engine.int4_linear import Int4Linear, int4_copy, on_grid
from models.engine.int8_output import Int8OutputLinear, int8_output_available
from models.loading import load_pretrained
from tests.models.serial import Loaded, chat

pytestmark = pytest.mark.skipif(not fp16_available(), reason="no FBGEMM (not x86)")


BLOCK = 32  # a Q4_1 block: float16 d, float16 m, 16 bytes of 4-bit q


@pytest.fixture(scope="module")
def float32(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    return load_pretrained(str(tiny_model_dir), cache_dir=tmp_path_factory.mktemp("cache32"))


def q4_1_blocks(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gguf's dequantised weight [out, in], q [out, in], d and m [out, in / 32]) of a tensor of
    the embedded default's GGUF, read from the wheel's file."""
    tensor = next(t for t in GGUFReader(embedded_gguf_path()).tensors if t.name == name)
    assert tensor.tensor_type.name == "Q4_1"
    raw = np.asarray(tensor.data)
    weight = torch.from_numpy(dequantize(raw, tensor.tensor_type).copy())
    blocks = raw.reshape(-1, 4 + BLOCK // 2)
    rows, groups = weight.shape[0], weight.shape[1] // BLOCK

    def half(columns: slice) -> torch.Tensor:
        values = blocks[:, columns].copy().view(np.float16).astype(np.float32)
        return torch.from_numpy(values).reshape(rows, groups)

    packed = blocks[:, 4:]
    q = np.concatenate([packed & 15, packed >> 4], axis=1).astype(np.int64)
    return weight, torch.from_numpy(q).reshape(weight.shape), half(slice(0, 2)), half(slice(2, 4))


@pytest.mark.parametrize("name", ["blk.0.ffn_down.weight", "blk.7.attn_v.weight"])
def test_a_q4_1_layer_keeps_the_gguf_blocks_q_exactly_and_d_m_as_bfloat16(name: str) -> None:
    weight, q, d, m = q4_1_blocks(name)
    assert on_grid(weight)
    layer = Int4Linear(weight, None, group_size=BLOCK)
    scale, zero = layer.scale_and_zero.transpose(0, 1).float().unbind(-1)
    # The layout's w = (q - 8) x scale + zero: scale is the block's d, zero m + 8d, in bfloat16.
    assert torch.equal(scale, d.bfloat16().float())
    assert torch.equal(zero, (m + 8 * d).bfloat16().float())
    # The kernel's own weights (identity times W^T, bfloat16 out) give back every q of the file.
    with torch.inference_mode():
        kernel_weight = layer(torch.eye(weight.shape[1])).T

    def per_weight(per_block: torch.Tensor) -> torch.Tensor:
        return per_block.repeat_interleave(BLOCK, dim=1)

    recovered = ((kernel_weight - per_weight(zero)) / per_weight(scale) + 8).round().long()
    assert torch.equal(recovered, q)
    # Against gguf's dequantisation: off by bfloat16 rounding of scale, zero and output only.
    assert float(((kernel_weight - weight).abs() / per_weight(d)).max()) < 0.1


def test_on_grid_tells_4_bit_groups_from_other_weights() -> None:
    generator = torch.Generator().manual_seed(1)
    q = torch.randint(0, 16, (8, 64), generator=generator).float()
    q[:, ::BLOCK] = 0
    q[:, 1::BLOCK] = 15
    grid = 0.013 * q - 0.1
    assert on_grid(grid)
    assert not on_grid(grid + 1e-3 * torch.randn(8, 64, generator=generator))
    assert not on_grid(torch.randn(8, 48))  # inputs not a multiple of the group


def test_int4_copy_quantises_other_models_at_load_with_its_group_size(float32: Loaded) -> None:
    model = float32[0]
    assert not on_grid(model.model.layers[0].mlp.down_proj.weight)
    converted = int4_copy(model, group_size=64)
    assert converted is not None
    layers = [m for m in converted.modules() if isinstance(m, Int4Linear)]
    assert layers and all(m.group_size == 64 for m in layers)
    output = Int8OutputLinear if int8_output_available() else Fp16Linear
    assert isinstance(converted.get_output_embeddings(), output)
    kept = int4_copy(model, group_size=64, int8_output=False)
    assert kept is not None and isinstance(kept.get_output_embeddings(), Fp16Linear)
    assert any(type(m) is nn.Linear for m in model.modules())  # the caller's model unchanged
    original, attention = model.model.layers[0].self_attn, converted.model.layers[0].self_attn
    x = torch.randn(3, 4, original.q_proj.in_features)
    with torch.inference_mode():
        for name in ("q_proj", "k_proj", "v_proj"):
            want = getattr(original, name)(x)
            got = getattr(attention, name)(x)
            assert got.dtype == torch.float32 and got.shape == want.shape
            # 4-bit steps of 1/15 of a group's range: close, not equal.
            error = float((got - want).abs().mean() / want.abs().mean())
            assert error < 0.2
    with pytest.raises(ValueError, match="group size"):
        int4_copy(model, group_size=48)


def test_auto_runs_int4_only_on_a_4_bit_checkpoint(float32: Loaded) -> None:
    model = float32[0]
    assert prepare_model(model, weights="auto", pack_weights=True, max_batch=4).weights == "fp16"
    chosen = prepare_model(model, weights="int4", pack_weights=True, max_batch=4)
    assert (chosen.weights, chosen.compact) == ("int4", True)
    four_bit = copy.deepcopy(model)
    for module in four_bit.modules():
        if type(module) is nn.Linear and module is not four_bit.get_output_embeddings():
            module.weight.data = on_grid_copy(module.weight.data)
    chosen = prepare_model(four_bit, weights="auto", pack_weights=True, max_batch=4)
    assert (chosen.weights, chosen.compact) == ("int4", True)


def on_grid_copy(weight: torch.Tensor) -> torch.Tensor:
    """`weight` rounded to 4-bit groups of 32 as a Q4_1 GGUF holds them (min + q x range / 15)."""
    groups = weight.reshape(-1, BLOCK)
    low = groups.amin(dim=1, keepdim=True)
    step = (groups.amax(dim=1, keepdim=True) - low) / 15
    q = ((groups - low) / step).round()
    result = (low + q * step).reshape(weight.shape)
    assert on_grid(result)
    return result


async def test_an_int4_engine_streams_reuses_prefixes_and_cancels(float32: Loaded) -> None:
    model, tokenizer = float32
    config = EngineConfig(max_batch=4, weights="int4")
    engine = BatchedChatModel(model, tokenizer, name="tiny", stop_token_ids=(), config=config)
    greedy = GenerationParams(max_new_tokens=12, temperature=0.0, repetition_penalty=2.0)
    try:
        assert engine._batcher.runner.weights == "int4"  # type: ignore[attr-defined]
        pieces = [p async for p in engine.stream(chat("hello"), greedy)]
        assert len(pieces) > 1  # streamed piece by piece
        reply = "".join(pieces)
        follow_up = [*chat("hello"), ChatMessage("assistant", reply)]
        await complete(engine, [*follow_up, ChatMessage("user", "And then?")], greedy)
        assert engine.stats.reused_tokens >= engine.count_tokens(follow_up) // 2

        stream = engine.stream(chat("tell me more"), GenerationParams(max_new_tokens=400))
        await anext(stream)
        await stream.aclose()  # the consumer leaves mid-reply
        for _ in range(500):
            if engine.stats.cancelled:
                break
            await asyncio.sleep(0.01)
        assert engine.stats.cancelled == 1 and engine.admitted == 0
    finally:
        engine.close()


@pytest.mark.parametrize("outputs", [13, 48])
def test_a_layer_of_any_output_count_multiplies_like_its_weights(outputs: int) -> None:
    """The kernel packs outputs in 16s: other counts are padded and cut off again."""
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(outputs, 64, generator=generator)
    bias = torch.randn(outputs, generator=generator)
    layer = Int4Linear(weight, bias, group_size=32)
    x = torch.randn(2, 3, 64, generator=generator)
    with torch.inference_mode():
        got = layer(x)
    want = torch.nn.functional.linear(x, weight, bias)
    assert got.shape == want.shape == (2, 3, outputs)
    error = float((got - want).abs().mean() / want.abs().mean())
    assert error < 0.1, "4-bit steps of 1/15 of a group's range: close, not equal"

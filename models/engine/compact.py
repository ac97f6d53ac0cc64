"""CompactDecoder: the CPU backend's decode step for Llama-family models in a few torch ops a layer.

transformers' forward spends dozens of small operations a layer on a decode step (mask building,
rotary embeddings, repeat_kv, reshapes, SDPA's flash kernel, slow at one query per row: see
bench/results/design-measurements.md). This step does per layer: RMSNorm, one fused QKV product,
rotary embedding from the model's own `rotary_emb`, the new keys and values written into the batch's
slots (models/engine/kv.py), attention as two batched matmuls over the slots with the query heads of
a KV head grouped (no repeat_kv), the output product, RMSNorm, one fused gate/up product, SiLU,
down. It runs on the fused layers of models/engine/fused.py (int4, fp16, bf16) or int8_linear.py,
so it exists only where those do, for the model types in SUPPORTED, and only once `matches` found
its logits equal to the model's own forward on a small batch (else the batcher keeps
transformers' forward).
Prefill still runs transformers' forward: any Hugging Face causal LM works as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from models.engine.kv import BatchKV, layer_kv

logger = logging.getLogger(__name__)

SUPPORTED = frozenset({"llama", "mistral", "qwen2"})


@dataclass(frozen=True)
class _Layer:
    input_norm: torch.Tensor
    qkv: nn.Module  # Int8Linear or Bf16Linear, as the others
    o: nn.Module
    post_norm: torch.Tensor
    gate_up: nn.Module
    down: nn.Module
    scaling: float


class CompactDecoder:
    """One decode step of every row: `step(kv, tokens, positions, mask)` -> logits [rows, vocab].

    `kv` is the batch's BatchKV (its layers take this step's keys and values in place), `mask` the
    one `kv.next_mask()` returned for this step. Build it with `compact_decoder(model)`.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        config, inner = model.config, model.model
        self._heads = int(config.num_attention_heads)
        self._kv_heads = int(getattr(config, "num_key_value_heads", None) or self._heads)
        self._dim = int(getattr(config, "head_dim", None) or config.hidden_size // self._heads)
        self._eps = float(config.rms_norm_eps)
        self._hidden = int(config.hidden_size)
        self._embed = inner.embed_tokens  # float32 out (HalfEmbedding converts)
        self._norm = inner.norm.weight
        self._rotary = inner.rotary_emb
        self._lm_head = model.lm_head
        self._layers = [
            _Layer(
                input_norm=layer.input_layernorm.weight,
                qkv=layer.self_attn.botloom_qkv,
                o=layer.self_attn.o_proj,
                post_norm=layer.post_attention_layernorm.weight,
                gate_up=layer.mlp.botloom_gate_up,
                down=layer.mlp.down_proj,
                scaling=float(layer.self_attn.scaling),
            )
            for layer in inner.layers
        ]

    def step(
        self, kv: BatchKV, tokens: Sequence[int], positions: Sequence[int], mask: torch.Tensor
    ) -> torch.Tensor:
        rows, heads, kv_heads, dim = len(tokens), self._heads, self._kv_heads, self._dim
        group, shape = heads // kv_heads, (self._hidden,)
        x = self._embed(torch.tensor(tokens))  # [rows, hidden]
        position_ids = torch.tensor(positions)[:, None]
        cos, sin = self._rotary(x[:, None], position_ids)  # [rows, 1, dim]
        cos, sin = cos.view(rows, 1, dim), _signed(sin.view(rows, 1, dim))
        bias = torch.zeros(mask.shape, dtype=x.dtype).masked_fill_(mask == 0, float("-inf"))
        bias = bias[:, None, None, :]  # [rows, 1, 1, width]
        rotated = heads + kv_heads  # q and k heads, rotated together
        low: torch.Tensor | None = None  # the bias in a bfloat16 cache's dtype
        for layer, slots in zip(self._layers, kv.cache.layers, strict=True):
            h = F.rms_norm(x, shape, layer.input_norm, self._eps)
            qkv = layer.qkv(h).view(rows, rotated + kv_heads, dim)
            qk = _rotate(qkv[:, :rotated], cos, sin)  # [rows, heads + kv_heads, dim]
            q = qk[:, :heads].view(rows, kv_heads, group, dim)
            keys, values = slots.update(qk[:, heads:, None], qkv[:, rotated:, None])
            if keys.dtype != q.dtype:  # a bfloat16 cache: oneDNN's attention, float32 inside
                low = low if low is not None else bias.to(keys.dtype)
                attended = F.scaled_dot_product_attention(
                    q.to(keys.dtype), keys, values, attn_mask=low, scale=layer.scaling
                ).float()
            else:
                scores = torch.matmul(q, keys.transpose(-1, -2)).mul_(layer.scaling).add_(bias)
                attended = torch.matmul(torch.softmax(scores, dim=-1), values)
            x = x + layer.o(attended.view(rows, heads * dim))
            h = F.rms_norm(x, shape, layer.post_norm, self._eps)
            gate, up = layer.gate_up(h).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate).mul_(up))
        return self._lm_head(F.rms_norm(x, shape, self._norm, self._eps))


def _signed(sin: torch.Tensor) -> torch.Tensor:
    """sin with its first half negated: rotate_half(x) * sin == roll(x, half) * _signed(sin)."""
    half = sin.shape[-1] // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """The rotary embedding of `x` [..., dim] (`signed_sin` from `_signed`)."""
    return torch.addcmul(x * cos, torch.roll(x, x.shape[-1] // 2, dims=-1), signed_sin)


def compact_decoder(
    model: PreTrainedModel, kv_dtype: torch.dtype | None = None
) -> CompactDecoder | None:
    """A CompactDecoder for `model` (an int8 or bf16 copy), or None where it does not apply or
    its logits, with a KV cache in `kv_dtype` (None: the model's), differ from the forward's."""
    config = model.config
    inner = getattr(model, "model", None)
    if config.model_type not in SUPPORTED or getattr(config, "hidden_act", "") != "silu":
        return None
    if inner is None or getattr(inner, "rotary_emb", None) is None:
        return None
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        if config.model_type != "llama":
            return None
    try:
        layers = inner.layers
        if not all(
            hasattr(layer.self_attn, "botloom_qkv") and hasattr(layer.mlp, "botloom_gate_up")
            for layer in layers
        ):
            return None
        decoder = CompactDecoder(model)
        if not matches(model, decoder, kv_dtype):
            logger.warning("the compact decode step differs from the model's: not used")
            return None
        return decoder
    except Exception:  # an unexpected module layout: keep transformers' forward
        logger.warning("the compact decode step is unavailable", exc_info=True)
        return None


def matches(
    model: PreTrainedModel, decoder: CompactDecoder, kv_dtype: torch.dtype | None = None
) -> bool:
    """Whether one compact step gives the model's own next-token logits for a small batch of
    prompts of different lengths (a left-padded BatchKV, as the batcher has it)."""
    generator = torch.Generator().manual_seed(0)
    vocab = int(model.config.vocab_size)
    prompts = [torch.randint(0, vocab, (1, n), generator=generator) for n in (7, 4)]
    nexts = [int(t) for t in torch.randint(0, vocab, (2,), generator=generator)]
    kv = BatchKV(model.config, model.device, max_rows=2, dtype=kv_dtype)
    expected = []
    import inspect

    parameters = inspect.signature(model.forward).parameters
    name = "cache" if "cache" in parameters else "past_key_values"
    with torch.inference_mode():
        kvs = []
        for prompt, token in zip(prompts, nexts, strict=True):
            cache = DynamicCache(config=model.config)
            model(input_ids=prompt, use_cache=True, **{name: cache})
            kvs.append([tuple(t.clone() for t in layer_kv(layer)) for layer in cache.layers])
            out = model(input_ids=torch.tensor([[token]]), use_cache=True, **{name: cache})
            expected.append(out.logits[0, -1])
        kv.add(kvs, [p.shape[1] for p in prompts])
        got = decoder.step(kv, nexts, [p.shape[1] for p in prompts], kv.next_mask())
    want = torch.stack(expected)
    return bool(torch.allclose(got, want, rtol=0, atol=2e-2 * float(want.abs().max())))

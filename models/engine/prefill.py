"""Batched prefill: which waiting requests run their prompts together, the batch they make, and
its forward pass (`run_prefill`).

Several prompts run as one forward pass: the reused prefixes (what the PrefixCache holds)
left-padded to the longest, then the new tokens left-padded to the longest suffix, so that every
row's last token is in the last column; the attention mask hides both paddings. (A padding query
with nothing to attend to gets zeros from PyTorch's attention, and its keys are masked for
everyone.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel

from models.engine.kv import LayerKV, cast_kv, fill_cache, layer_kv
from models.engine.prefix_cache import PrefixCache
from models.engine.request import EngineRequest

# Batched prefill: a request waits for an earlier one of the same admission whose prompt shares
# this many tokens more than the PrefixCache holds; a group's padded suffixes may total at most
# _PAD_RATIO x its real ones + _PAD_SLACK tokens, and _GROUP_TOKENS in all.
_SHARED_ENOUGH = 16
_PAD_RATIO = 1.25
_PAD_SLACK = 16
_GROUP_TOKENS = 4096


@dataclass(eq=False)
class Prefill:
    request: EngineRequest
    reused: int  # prompt tokens whose KV cache the PrefixCache holds
    past: LayerKV | None  # that KV cache

    @property
    def suffix(self) -> int:
        return len(self.request.prompt_ids) - self.reused


def shared_prefix(a: list[int], b: list[int]) -> int:
    """The length of the common prefix of two prompts."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def padded_pasts(group: list[Prefill], width: int, dtype: torch.dtype) -> LayerKV:
    """The group's reused KV caches as one batch in `dtype`, left-padded with zeros to `width`
    tokens."""
    example = next(p.past for p in group if p.past is not None)
    padded: LayerKV = []
    for layer, (keys, values) in enumerate(example):
        k = keys.new_zeros(len(group), keys.shape[1], width, keys.shape[3], dtype=dtype)
        v = values.new_zeros(len(group), values.shape[1], width, values.shape[3], dtype=dtype)
        for i, p in enumerate(group):
            if p.past is not None and p.reused:
                k[i, :, width - p.reused :] = p.past[layer][0][0]
                v[i, :, width - p.reused :] = p.past[layer][1][0]
        padded.append((k, v))
    return padded


def prefill_inputs(
    group: list[Prefill], past: int, suffix: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input ids and position ids [rows, suffix] and the attention mask [rows, past + suffix] of
    the group's prompts, `past` being the longest reused prefix and `suffix` the longest rest."""
    rows = len(group)
    input_ids = torch.zeros(rows, suffix, dtype=torch.long)
    positions = torch.zeros(rows, suffix, dtype=torch.long)
    mask = torch.zeros(rows, past + suffix, dtype=torch.long)
    for i, p in enumerate(group):
        ids = p.request.prompt_ids
        input_ids[i, suffix - p.suffix :] = torch.tensor(ids[p.reused :])
        positions[i] = torch.arange(p.reused - suffix + p.suffix, len(ids)).clamp(min=0)
        mask[i, past - p.reused : past] = 1
        mask[i, past + suffix - p.suffix :] = 1
    return input_ids, positions, mask


def row_kv(layers: LayerKV, i: int, p: Prefill, past: int, suffix: int) -> LayerKV:
    """Row i's own KV cache out of a batched prefill's, paddings dropped: [1, heads, len, dim]."""
    real = (slice(past - p.reused, past), slice(past + suffix - p.suffix, None))
    return [
        (
            torch.cat([k[i : i + 1, :, r] for r in real], dim=2),
            torch.cat([v[i : i + 1, :, r] for r in real], dim=2),
        )
        for k, v in layers
    ]


def next_prefill_group(
    requests: list[EngineRequest], prefixes: PrefixCache
) -> tuple[list[Prefill], list[EngineRequest]]:
    """The requests to prefill together in one forward pass, and those left for later.

    A request that shares more of its prompt with an earlier one of these than the
    PrefixCache holds waits for that one's KV cache (conversations starting together share
    their system prompt). Suffixes are padded to the longest of the group: requests whose
    suffix would be mostly padding wait for a group of their own.
    """
    candidates: list[Prefill] = []
    later: list[EngineRequest] = []
    for request in requests:
        reused, past = prefixes.match(request.prompt_ids)
        if any(
            shared_prefix(request.prompt_ids, other.request.prompt_ids) >= reused + _SHARED_ENOUGH
            for other in candidates
        ):
            later.append(request)
            continue
        candidates.append(Prefill(request, reused, past))
    candidates.sort(key=lambda p: p.suffix)
    group = candidates[:1]
    tokens = group[0].suffix
    for index, prefill in enumerate(candidates[1:], start=1):
        tokens += prefill.suffix
        padded = (len(group) + 1) * prefill.suffix
        if padded > _PAD_RATIO * tokens + _PAD_SLACK or padded > _GROUP_TOKENS:
            later = [p.request for p in candidates[index:]] + later
            break
        group.append(prefill)
    return group, later


def run_prefill(
    model: PreTrainedModel,
    group: list[Prefill],
    *,
    device: torch.device,
    cache_argument: str,
    kv_dtype: torch.dtype,
) -> tuple[list[LayerKV], torch.Tensor]:
    """Run the prompts of `group` (what the PrefixCache lacks of each) in one forward pass of
    `model` on `device` (`cache_argument`: the forward's name for the KV cache).

    Returns each prompt's own KV cache, paddings dropped, in `kv_dtype` (per layer
    [1, kv_heads, prompt, head_dim]), and the logits of each prompt's next token [rows, vocab].
    """
    rows, past, suffix = len(group), max(p.reused for p in group), max(p.suffix for p in group)
    input_ids, positions, mask = prefill_inputs(group, past, suffix)
    cache = DynamicCache(config=model.config)
    if past:
        dtype = model.dtype  # the forward's; the kept caches may be bfloat16
        pasts = padded_pasts(group, past, dtype) if rows > 1 else group[0].past or []
        fill_cache(cache, cast_kv(pasts, dtype))
    out = model(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=True,
        logits_to_keep=1,
        **{cache_argument: cache},
    )
    layers = [layer_kv(layer) for layer in cache.layers]
    kvs = [
        cast_kv(layers if rows == 1 else row_kv(layers, i, p, past, suffix), kv_dtype)
        for i, p in enumerate(group)
    ]
    return kvs, out.logits[:, -1]

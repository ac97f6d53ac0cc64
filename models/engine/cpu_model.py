"""The model a DynamicBatcher runs, and the defaults the CPU path takes from the model.

`prepare_model` chooses, once at load: 4-bit weights (models/engine/int4_linear.py) for a
checkpoint of 4-bit groups (the embedded default's Q4_1 GGUF: its own blocks) or when asked for
("int4": other models quantised at load), else float16 weights (models/engine/fp16_linear.py)
where FBGEMM runs (x86), else bfloat16 weights (models/engine/bf16_linear.py) on a CPU with
native bfloat16, else int8 weights (models/engine/int8_linear.py), each with the compact decode
step (models/engine/compact.py) where it applies; else oneDNN-packed float32 weights
(models/engine/packed_linear.py), else the caller's model as it is. `EngineModel.decode` is one
decode step of every row of the batch, through the compact step or transformers' forward.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import inspect
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from models.engine.bf16_linear import bf16_copy
from models.engine.compact import CompactDecoder, compact_decoder
from models.engine.file_embedding import FileEmbedding
from models.engine.fp16_linear import fp16_copy
from models.engine.int4_linear import four_bit_checkpoint, int4_available, int4_copy
from models.engine.int8_linear import quantized_copy
from models.engine.kv import BatchKV
from models.engine.packed_linear import packed_copy
from models.engine_choices import EngineWeights

logger = logging.getLogger(__name__)

MIN_PREFIX_CACHE_BYTES = 32 << 20


def supports_dynamic_batching(model: PreTrainedModel) -> bool:
    """True for decoder-only models whose every layer keeps a plain growing KV cache (Llama,
    Qwen2, Phi-3, ...); sliding-window and recurrent layers would need their own padding rules."""
    if getattr(model.config, "is_encoder_decoder", False):
        return False
    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # an architecture whose cache cannot be built from its config
        return False
    return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)


@dataclass
class EngineModel:
    """The model the batcher runs. `weights`: "fp16", "bf16", "int8", "packed" (oneDNN float32)
    or "as loaded"; `compact`: whether decode steps take the compact path."""

    model: PreTrainedModel
    weights: str
    decoder: CompactDecoder | None = None

    @property
    def kv_dtype(self) -> torch.dtype:
        """The batch's and the kept KV cache's dtype: bfloat16 with bf16 weights and the compact
        step (its attention reads half the bytes), else the model's (with fp16 weights too: a
        bfloat16 cache alone cost greedy replies their agreement with float32's, as
        bench/agreement.py measures)."""
        if self.weights == "bf16" and self.decoder is not None:
            return torch.bfloat16
        return self.model.dtype

    def __post_init__(self) -> None:
        # transformers 5.24 renamed the forward argument `past_key_values` (5.17) to `cache`.
        forward = inspect.signature(self.model.forward).parameters
        self.cache_argument = "cache" if "cache" in forward else "past_key_values"

    def release_idle_memory(self) -> None:
        """What an idle engine gives back: freed heap (trim_heap) and the input embedding's
        pages mapped from its file (FileEmbedding)."""
        trim_heap()
        embedding = self.model.get_input_embeddings()
        if isinstance(embedding, FileEmbedding):
            embedding.release()

    @property
    def compact(self) -> bool:
        return self.decoder is not None

    @property
    def path(self) -> str:
        """How a decode step runs: "compact" or "forward" (transformers')."""
        return "compact" if self.decoder is not None else "forward"

    def decode(self, kv: BatchKV, tokens: Sequence[int], positions: Sequence[int]) -> torch.Tensor:
        """Logits [rows, vocab] of the next token of every row; the step's keys and values are
        written into `kv`."""
        mask = kv.next_mask()
        if self.decoder is not None:
            return self.decoder.step(kv, tokens, positions, mask)
        device = self.model.device
        out = self.model(
            input_ids=torch.tensor([[t] for t in tokens], device=device),
            attention_mask=mask,
            position_ids=torch.tensor([[p] for p in positions], device=device),
            use_cache=True,
            logits_to_keep=1,
            **{self.cache_argument: kv.cache},
        )
        return out.logits[:, -1]


def prepare_model(
    model: PreTrainedModel,
    *,
    weights: EngineWeights,
    pack_weights: bool,
    max_batch: int,
    int4_group_size: int = 32,
) -> EngineModel:
    """The batcher's model for a float32 model on the CPU: a 4-bit copy ("int4", groups of
    `int4_group_size` inputs; "auto" too where the checkpoint holds 4-bit groups of 32, kept),
    a float16 copy ("fp16", or "auto" where FBGEMM runs), a bfloat16 copy ("bf16", or "auto"
    where the CPU has native bfloat16) or an int8 copy ("int8", or "auto" elsewhere), with the
    compact step; else a packed copy (`pack_weights`), else `model` itself."""
    # "auto" runs a checkpoint of 4-bit groups of 32 (the embedded default's Q4_1) on its own
    # blocks: a decode step 1.2x float16's speed at one row and 1.08x at 16, in a third of the
    # bytes (docs/cpu-path.md). Other models are quantised to 4 bits only when asked ("int4").
    shipped_four_bit = four_bit_checkpoint(model)
    four_bit = weights == "int4" or (weights == "auto" and shipped_four_bit)
    group = 32 if shipped_four_bit else int4_group_size
    if weights == "int4" and not int4_available():
        logger.warning("int4 weights need torch's int4 CPU kernel, missing from this build")
    formats: list[tuple[str, Callable[[], PreTrainedModel | None], torch.dtype | None]] = [
        ("int4", lambda: int4_copy(model, group) if four_bit else None, None),
        ("fp16", lambda: fp16_copy(model), None),
        ("bf16", lambda: bf16_copy(model, max_batch), torch.bfloat16),
        ("int8", lambda: quantized_copy(model), None),
    ]
    for name, make_copy, kv_dtype in formats:  # each copy is None where it does not apply
        if weights in ("auto", name):
            converted = make_copy()
            if converted is not None:
                compact = compact_decoder(converted, kv_dtype)
                logger.info("engine weights: %s (%s decode step)", name,
                            "compact" if compact else "the model's own")  # fmt: skip
                return EngineModel(converted, name, compact)
            if weights == name:
                logger.warning("%s weights do not apply to this model here: float32 it is", name)
    packed = packed_copy(model, max_batch) if pack_weights else None
    return EngineModel(packed, "packed") if packed is not None else EngineModel(model, "as loaded")


def kv_bytes_per_token(model: PreTrainedModel, dtype: torch.dtype | None = None) -> int:
    """Bytes of KV cache one token takes (keys and values of every layer), in `dtype` (None:
    the model's)."""
    config = model.config
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    size = torch.empty(0, dtype=dtype or model.dtype).element_size()
    return 2 * int(config.num_hidden_layers) * kv_heads * dim * size


def default_prefix_cache_bytes(model: PreTrainedModel) -> int:
    """The PrefixCache's default bound: a sixteenth of the model's weights as loaded, at least
    32 MiB. A kept cache fills to its bound in use, so the bound is memory `botloom serve` takes
    on over its first turns (bench/serve_memory.py); larger bounds cost that memory without more
    reuse for many conversations at once (bench/engine.py's workload reused the same prompt
    tokens with each: see bench/results/design-measurements.md). Many conversations at human
    pace want more (BOTLOOM_PREFIX_CACHE_MB)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return max(MIN_PREFIX_CACHE_BYTES, weights // 16)


def release_freed_memory() -> None:
    """Hand memory freed since loading back to the OS (glibc keeps freed blocks otherwise, so the
    float32 weights a batcher's copy replaced would stay resident). Best-effort; nothing happens
    off glibc."""
    gc.collect()
    trim_heap()


def trim_heap() -> None:
    """glibc's malloc_trim: freed heap memory back to the OS (quick; nothing off glibc).
    The engine calls it when its batch empties: glibc keeps what prefills freed, and without it
    the process grows with every turn far beyond the KV cache it keeps (see
    bench/results/design-measurements.md).

    Safe beside other threads: it is the allocator's own documented call, run under the
    allocator's own locks, and gives back only the pages of chunks that are already free, so it
    reads and writes no memory any thread holds; it changes no allocator setting either."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def cpu_threads(requested: int = 0) -> int:
    """Torch threads for the CPU: `requested`, or (0) the cores this process may run on."""
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def use_cpu_threads(requested: int = 0) -> int:
    """Make torch's intra-op pool use `cpu_threads(requested)` threads; returns that number."""
    threads = cpu_threads(requested)
    torch.set_num_threads(threads)
    return threads

"""How the engine is configured, and what a batching backend must provide."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from models.engine.request import EngineRequest, EngineStats
from models.engine_choices import EngineWeights

Backend = Literal["auto", "dynamic", "paged"]


@dataclass(frozen=True)
class EngineConfig:
    """How the engine admits and batches requests.

    `max_batch`: replies generated together; `max_waiting`: admitted requests waiting for one of
    those places; the next caller gets ModelOverloaded(retry_after=`retry_after_s`).
    `backend`: "paged" on CUDA, "dynamic" elsewhere when "auto".
    `prefix_cache_tokens` (dynamic): KV cache of recent conversations kept for reuse, in tokens
    (about 46 kB each for the embedded default in float32). `pack_weights` (dynamic, float32 on the
    CPU): run on a copy of the model whose linear layers are pre-packed for oneDNN
    (models/engine/packed_linear.py; a second copy of those weights while the caller keeps the
    model).
    `block_size` (paged): tokens per KV-cache block; only whole blocks are shared between prompts,
    so short chat turns want small blocks. `kv_cache_blocks` and `max_batch_tokens` (tokens in
    one forward pass; long prompts are split) (paged): None sizes them from free GPU memory
    (`gpu_memory_fraction` of it, None: transformers' default). `cuda_graphs` and
    `async_batching` (paged; double-buffered steps that hide CPU overhead): None lets transformers
    decide (both on with flash attention, off with SDPA).

    CPU speed (dynamic backend): `weights` "auto" runs a float32 model on the CPU on
    float16 weights where FBGEMM runs, else bfloat16 or int8, with the compact decode step
    (models/engine/cpu_model.py), "float32" on its own (oneDNN-packed) weights.
    `prefix_cache_bytes` bounds the PrefixCache in bytes as well (None: a sixteenth of the
    model's weights, at least 32 MiB). `torch_threads`: torch's intra-op threads on the CPU (0: the
    cores the process may run on). `weights` "auto" runs a checkpoint of 4-bit groups (the
    embedded default's Q4_1 GGUF) on int4 weights as they are; "int4" quantises any other model
    at load, `int4_group_size` inputs per scale and zero point (32, 64 or 128).
    """

    backend: Backend = "auto"
    max_batch: int = 16
    max_waiting: int = 64
    retry_after_s: float = 2.0
    prefix_cache_tokens: int = 16384
    pack_weights: bool = True
    block_size: int = 16
    kv_cache_blocks: int | None = None
    max_batch_tokens: int | None = None
    gpu_memory_fraction: float | None = None
    cuda_graphs: bool | None = None
    async_batching: bool | None = None
    # CPU speed (dynamic backend)
    weights: EngineWeights = "auto"
    prefix_cache_bytes: int | None = None
    torch_threads: int = 0
    int4_group_size: int = 32


class Batcher(Protocol):
    """What BatchedChatModel needs from a backend (see DynamicBatcher, PagedBatcher)."""

    stats: EngineStats

    def submit(self, request: EngineRequest) -> None: ...

    def cancel(self, request: EngineRequest) -> None: ...

    def close(self) -> None: ...

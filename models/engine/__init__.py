"""The batching engine: many conversations' replies generated together, off the event loop.

- `chat_model`: `BatchedChatModel` (the ChatModel), `create_batcher` (the backend for a device)
  and `load_engine_model` (the engine a setting names: batched or serial).
- `config`: `EngineConfig` and the `Batcher` protocol the backends implement.
- `dynamic`: `DynamicBatcher`, the CPU backend (a decode loop written here), with `kv` (the
  batch's KV cache in preallocated slots), `prefix_cache` (conversations' KV kept for reuse),
  `packed_linear` (oneDNN-packed weights) and `sampling`.
- `paged`: `PagedBatcher`, the CUDA backend (transformers' continuous batching).
- `request`: one request's state and the engine's counters.
"""

from models.engine.chat_model import BatchedChatModel, create_batcher, load_engine_model
from models.engine.config import EngineConfig

__all__ = ["BatchedChatModel", "EngineConfig", "create_batcher", "load_engine_model"]

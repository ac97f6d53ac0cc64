"""BatchedChatModel: a ChatModel that generates the replies of many conversations together.

Requests are admitted up to `max_batch` generating plus `max_waiting` waiting; beyond that the
caller gets ModelOverloaded at once instead of a queue that grows without bound. A batcher runs
the model in its own thread, never on the event loop:

- DynamicBatcher (models/engine/dynamic.py), the CPU backend: continuous batching by a decode
  loop written here, and reuse of each conversation's KV cache across turns (PrefixCache).
- PagedBatcher (models/engine/paged.py), the CUDA backend: transformers' ContinuousBatchingManager
  (paged KV cache with prefix sharing, CUDA graphs where transformers enables them).

Tokens become text in the batcher's thread (ReplyText) and each piece is handed to the event loop
with `loop.call_soon_threadsafe`. Closing a stream cancels its request: it leaves the batch before
the next decode step and its slot is free at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.api import (
    ChatModel,
    GenerationParams,
    ModelOverloaded,
    ModelUnavailable,
    PromptTooLong,
)
from models.decoding import ReplyText
from models.engine.config import Batcher, EngineConfig
from models.engine.cpu_model import release_freed_memory, use_cpu_threads
from models.engine.request import EngineRequest, EngineStats
from models.engine_choices import ENGINES
from models.hf import load_chat_model, load_model
from models.loaded import LoadedChatModel
from models.loading import pick_device


def create_batcher(
    model: PreTrainedModel, config: EngineConfig, default_params: GenerationParams | None = None
) -> Batcher:
    """The backend for `config.backend` ("auto": paged on CUDA, dynamic elsewhere).

    `default_params` (paged backend) fixes greedy or sampling for all requests: transformers'
    continuous batching decides that once per manager. Raises ValueError if the model cannot be
    batched by the chosen backend.
    """
    backend = config.backend
    if backend == "auto":
        backend = "paged" if model.device.type == "cuda" else "dynamic"
    if backend == "paged":
        from models.engine.paged import PagedBatcher

        return PagedBatcher(model, config, default_params=default_params)
    from models.engine.dynamic import DynamicBatcher

    return DynamicBatcher(
        model,
        max_batch=config.max_batch,
        prefix_cache_tokens=config.prefix_cache_tokens,
        pack_weights=config.pack_weights,
        weights=config.weights,
        int4_group_size=config.int4_group_size,
        prefix_cache_bytes=config.prefix_cache_bytes,
    )


class BatchedChatModel(LoadedChatModel):
    """A ChatModel that batches the requests of concurrent conversations (see the module doc).

    `context_window` defaults to the model's `max_position_embeddings`; `stop_token_ids` default to
    the model's and tokenizer's EOS tokens. `stats` counts requests, decode steps, batch sizes and
    prefill tokens computed or reused. Call `close()` when done.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        config: EngineConfig | None = None,
        context_window: int | None = None,
        stop_token_ids: Sequence[int] | None = None,
        default_params: GenerationParams | None = None,
        batcher: Batcher | None = None,
    ) -> None:
        super().__init__(
            model,
            tokenizer,
            name=name,
            context_window=context_window,
            stop_token_ids=stop_token_ids,
        )
        self.config = config or EngineConfig()
        self._batcher = batcher or create_batcher(model, self.config, default_params)
        self._admitted = 0
        self._closed = False

    @property
    def stats(self) -> EngineStats:
        return self._batcher.stats

    @property
    def tokens_generated(self) -> int:
        return self._batcher.stats.tokens_generated

    @property
    def running(self) -> int:
        """Requests decoding now: the admitted ones up to max_batch (the rest wait)."""
        return min(self._admitted, self.config.max_batch)

    @property
    def max_batch(self) -> int:
        return self.config.max_batch

    @property
    def admitted(self) -> int:
        """Requests generating or waiting now."""
        return self._admitted

    async def _stream(
        self, prompt: Callable[[], list[int]], params: GenerationParams
    ) -> AsyncGenerator[str, None]:
        """Yield the reply to the prompt ids `prompt()` gives piece by piece.

        Raises ModelOverloaded when `max_batch + max_waiting` requests are admitted already,
        ModelError if generation fails, PromptTooLong if the prompt leaves no room for a reply,
        ModelUnavailable if the model is (or gets) closed. Closing or cancelling the iterator
        cancels the request; closing returns once the batcher has let it go.
        """
        if self._closed:
            raise ModelUnavailable(f"the model {self._name} is closed")
        prompt_ids = await asyncio.to_thread(prompt)  # the chat template, off the loop
        room = self._context_window - len(prompt_ids)
        if room <= 0:
            raise PromptTooLong(
                f"the prompt has {len(prompt_ids)} tokens;"
                f" the context window holds {self._context_window}"
            )
        if self._admitted >= self.config.max_batch + self.config.max_waiting:
            raise ModelOverloaded(
                f"{self._admitted} requests are already admitted",
                retry_after=self.config.retry_after_s,
            )
        request, pieces = self._request(prompt_ids, params, min(params.max_new_tokens, room))
        self._admitted += 1
        ended = False
        try:
            self._batcher.submit(request)
            while (piece := await pieces.get()) is not None:
                yield piece
            ended = True
            if request.error is not None:
                raise request.error
        finally:
            self._admitted -= 1
            if not ended:
                self._batcher.cancel(request)
                while await pieces.get() is not None:  # until the batcher has let it go
                    pass

    def close(self) -> None:
        """Stop the batcher; replies in progress or waiting end with ModelUnavailable."""
        self._closed = True
        self._batcher.close()

    def _request(
        self, prompt_ids: list[int], params: GenerationParams, max_new_tokens: int
    ) -> tuple[EngineRequest, asyncio.Queue[str | None]]:
        """A request whose text pieces, then None (the end), arrive in the returned queue."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        def emit(piece: str | None) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        request = EngineRequest(
            prompt_ids=prompt_ids,
            params=params,
            max_new_tokens=max_new_tokens,
            stop_token_ids=self.stop_token_ids,
            text=ReplyText(self._tokenizer, params.stop, self.stop_token_ids, emit),
            done=lambda error: emit(None),
        )
        return request, pieces


def load_engine_model(
    spec: str,
    *,
    cache_dir: Path,
    engine: str = "auto",
    config: EngineConfig | None = None,
    device: str | None = None,
    dtype: str | None = None,
    context_window: int | None = None,
    default_params: GenerationParams | None = None,
) -> ChatModel:
    """Load a chat model (see models.hf.load_chat_model) behind the chosen engine.

    `engine`: "serial" is HuggingFaceChatModel (one reply at a time); "batched" is
    BatchedChatModel; "auto" is BatchedChatModel where the model can be batched (every
    decoder-only model on CUDA; on the CPU, models with plain KV caches such as the embedded
    default, where batching measured fastest: bench/engine.py), else serial. Blocking.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    config = config or EngineConfig()
    if pick_device(device).type == "cpu":
        use_cpu_threads(config.torch_threads)
    if engine == "serial":
        return load_chat_model(
            spec, cache_dir=cache_dir, device=device, dtype=dtype, context_window=context_window
        )
    model, tokenizer, name = load_model(spec, cache_dir=cache_dir, device=device, dtype=dtype)
    if engine == "auto" and model.device.type != "cuda" and config.backend != "paged":
        from models.engine.cpu_model import supports_dynamic_batching
        from models.hf import HuggingFaceChatModel

        if not supports_dynamic_batching(model):
            return HuggingFaceChatModel(model, tokenizer, name=name, context_window=context_window)
    batched = BatchedChatModel(
        model,
        tokenizer,
        name=name,
        config=config,
        context_window=context_window,
        default_params=default_params,
    )
    if model.device.type == "cpu":
        del model  # the batcher runs its own copy: the loaded weights can go
        release_freed_memory()
    return batched

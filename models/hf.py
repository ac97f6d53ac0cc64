"""HuggingFaceChatModel: a ChatModel around a transformers causal LM.

Generation runs in one dedicated worker thread, never on the event loop. Tokens become text in
that thread (incremental detokenisation, stop strings) and each piece is handed to the event loop
with `loop.call_soon_threadsafe`. `generate_reply` is the whole per-request generation; the
batching engine (models/engine/) shares the pieces it uses: `ChatTemplate`
(models/chat_template.py), `ReplyText` (models/decoding.py) and `eos_token_ids` (models/loading.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from models.api import (
    GenerationParams,
    ModelError,
    ModelUnavailable,
    PromptTooLong,
)
from models.decoding import ReplyText
from models.embedded import EMBEDDED_DEFAULT, EMBEDDED_NAME, ensure_embedded_default
from models.loaded import LoadedChatModel
from models.loading import load_pretrained


class _ReplyStreamer(BaseStreamer):
    """Receives the new tokens from `generate` (in the worker thread) and emits reply text."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        stops: Sequence[str],
        stop_token_ids: Sequence[int],
        emit: Callable[[str], None],
        on_token: Callable[[], None],
    ) -> None:
        self._text = ReplyText(tokenizer, stops, stop_token_ids, emit)
        self._on_token = on_token
        self._prompt_seen = False

    @property
    def stopped(self) -> bool:
        return self._text.stopped

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first passes the whole prompt
            self._prompt_seen = True
            return
        for token_id in value.reshape(-1).tolist():  # one token: the batch holds one sequence
            self._on_token()
            self._text.push(token_id)

    def end(self) -> None:
        self._text.end()


class _StopWhen(StoppingCriteria):
    """Ends generation at the next decode step once `should_stop()` is true."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self._should_stop = should_stop

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self._should_stop(), device=input_ids.device)


def sampling_kwargs(params: GenerationParams) -> dict[str, Any]:
    """`generate` keyword arguments for params: temperature 0 is greedy decoding.

    Every sampling setting is passed, so a checkpoint's own defaults (some set top_k or a
    temperature) never apply behind the caller's back; greedy decoding gets transformers' neutral
    values, which it does not warn about. top_k 0 turns top-k filtering off.
    """
    penalty = params.repetition_penalty
    if params.temperature <= 0:
        return {
            "do_sample": False,
            "temperature": 1.0,
            "top_p": 1.0,
            "top_k": 50,
            "repetition_penalty": penalty,
        }
    return {
        "do_sample": True,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": 0,
        "repetition_penalty": penalty,
    }


def generate_reply(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[int],
    params: GenerationParams,
    *,
    max_new_tokens: int,
    stop_token_ids: Sequence[int],
    emit: Callable[[str], None],
    cancelled: threading.Event,
    on_token: Callable[[], None] = lambda: None,
) -> None:
    """Generate one reply, blocking (run it in a worker thread), handing text pieces to `emit`.

    Ends at a stop token, a stop string, `max_new_tokens`, or within one decode step of
    `cancelled` being set; `on_token` is called once per generated token.
    """
    if cancelled.is_set() or max_new_tokens <= 0:
        return
    streamer = _ReplyStreamer(tokenizer, params.stop, stop_token_ids, emit, on_token)
    stop = _StopWhen(lambda: cancelled.is_set() or streamer.stopped)
    input_ids = torch.tensor([list(prompt_ids)], device=model.device)
    pad_token_id = tokenizer.pad_token_id
    if pad_token_id is None:
        pad_token_id = stop_token_ids[0] if stop_token_ids else 0
    with torch.inference_mode():
        model.generate(  # type: ignore[operator]  # from GenerationMixin, which stubs miss
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            eos_token_id=list(stop_token_ids),
            pad_token_id=pad_token_id,
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([stop]),
            **sampling_kwargs(params),
        )


class HuggingFaceChatModel(LoadedChatModel):
    """A ChatModel around a loaded transformers causal LM and its (chat-templated) tokenizer.

    One generation runs at a time, in a dedicated worker thread; further requests wait their
    turn. `context_window` defaults to the model's `max_position_embeddings`; `stop_token_ids`
    (the tokens that end a reply) default to the model's and tokenizer's EOS tokens.
    `tokens_generated` counts every token generated so far. Call `close()` when done.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        context_window: int | None = None,
        stop_token_ids: Sequence[int] | None = None,
    ) -> None:
        super().__init__(
            model,
            tokenizer,
            name=name,
            context_window=context_window,
            stop_token_ids=stop_token_ids,
        )
        self._model = model
        self.tokens_generated = 0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="botloom-generate")
        self._running: set[threading.Event] = set()
        self._closed = False

    async def _stream(
        self, prompt: Callable[[], list[int]], params: GenerationParams
    ) -> AsyncGenerator[str, None]:
        """Yield the reply to the prompt ids `prompt()` gives (in the worker) piece by piece.

        Raises ModelError if generation fails (the original error is its __cause__) or the prompt
        leaves no room in the context window, ModelUnavailable if the model is (or gets) closed.
        Closing or cancelling the iterator stops the worker within one decode step (after the
        prompt's prefill); closing returns once the worker has stopped.
        """
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(piece: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        if self._closed:
            raise ModelUnavailable(f"the model {self._name} is closed")
        job = loop.run_in_executor(self._worker, self._generate, prompt, params, emit, cancelled)
        # Runs after every piece the worker emitted: both go through the loop's FIFO callbacks.
        job.add_done_callback(lambda _: pieces.put_nowait(None))
        self._running.add(cancelled)
        try:
            while (piece := await pieces.get()) is not None:
                yield piece
            _raise_failure(job, self._name)
            if cancelled.is_set():  # only close() sets it while the consumer is still reading
                raise ModelUnavailable(f"the model {self._name} was closed during the reply")
        finally:
            cancelled.set()
            self._running.discard(cancelled)
            if not job.done():
                await asyncio.wait({job})
            if not job.cancelled():
                job.exception()  # marks an error after the consumer left as seen (no log noise)

    def close(self) -> None:
        """Stop any generation (within one decode step), cancel waiting ones, end the worker."""
        self._closed = True
        for cancelled in list(self._running):
            cancelled.set()
        self._worker.shutdown(wait=True, cancel_futures=True)

    def _generate(
        self,
        prompt: Callable[[], list[int]],
        params: GenerationParams,
        emit: Callable[[str], None],
        cancelled: threading.Event,
    ) -> None:
        prompt_ids = prompt()
        room = self._context_window - len(prompt_ids)
        if room <= 0:
            raise PromptTooLong(
                f"the prompt has {len(prompt_ids)} tokens;"
                f" the context window holds {self._context_window}"
            )
        generate_reply(
            self._model,
            self._tokenizer,
            prompt_ids,
            params,
            max_new_tokens=min(params.max_new_tokens, room),
            stop_token_ids=self.stop_token_ids,
            emit=emit,
            cancelled=cancelled,
            on_token=self._count_token,
        )

    def _count_token(self) -> None:
        self.tokens_generated += 1  # only the single worker thread writes it


def _raise_failure(job: asyncio.Future[None], name: str) -> None:
    if job.cancelled():
        raise ModelUnavailable(f"the model {name} was closed before it could reply")
    error = job.exception()
    if isinstance(error, ModelError):
        raise error
    if error is not None:
        raise ModelError(f"generation failed: {error!r}") from error


def load_model(
    spec: str, *, cache_dir: Path, device: str | None = None, dtype: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """(model, tokenizer, display name) for EMBEDDED_DEFAULT ("embedded"), a hub id, a folder or
    a .gguf file. Blocking (seconds to minutes). Raises ModelUnavailable."""
    if spec == EMBEDDED_DEFAULT:
        folder = ensure_embedded_default(cache_dir)
        model, tokenizer = load_pretrained(
            str(folder), cache_dir=cache_dir, device=device, dtype=dtype
        )
        return model, tokenizer, f"{EMBEDDED_NAME} (embedded)"
    model, tokenizer = load_pretrained(spec, cache_dir=cache_dir, device=device, dtype=dtype)
    return model, tokenizer, spec


def load_chat_model(
    spec: str,
    *,
    cache_dir: Path,
    device: str | None = None,
    dtype: str | None = None,
    context_window: int | None = None,
) -> HuggingFaceChatModel:
    """Load a chat model: EMBEDDED_DEFAULT ("embedded"), a hub id, a folder or a .gguf file.

    Blocking (seconds to minutes): call it from a worker thread. Raises ModelUnavailable.
    """
    model, tokenizer, name = load_model(spec, cache_dir=cache_dir, device=device, dtype=dtype)
    return HuggingFaceChatModel(model, tokenizer, name=name, context_window=context_window)

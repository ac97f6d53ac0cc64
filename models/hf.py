"""HuggingFaceChatModel: a ChatModel around a transformers causal LM.

Generation runs in one dedicated worker thread, never on the event loop. Tokens become text in
that thread (incremental detokenisation, stop strings) and each piece is handed to the event loop
with `loop.call_soon_threadsafe`. `generate_reply` is the whole per-request generation; the
batching engine (models/engine.py) reuses `ChatTemplate`, `ReplyText` and `eos_token_ids`.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from jinja2 import TemplateError
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from models.api import (
    ChatMessage,
    GenerationParams,
    ModelError,
    ModelUnavailable,
    PromptTooLong,
)
from models.embedded import EMBEDDED_DEFAULT, EMBEDDED_NAME, ensure_embedded_default
from models.loading import load_pretrained

REPLACEMENT = "\ufffd"  # what a decoder shows for an incomplete UTF-8 sequence


class IncrementalDecoder:
    """Turns token ids into text as they arrive, one piece per call, special tokens skipped.

    Decoding token by token breaks characters split over byte-fallback tokens and loses the
    spaces that sentencepiece decoders strip at the start of a text, so each step decodes a short
    window of recent tokens twice (up to the last emitted token, and up to the newest) and emits
    the difference, holding it back while it ends in an incomplete character (the approach of
    vLLM and text-generation-inference). The pieces join to the text of all ids decoded at once,
    except after byte tokens that never form valid UTF-8 (U+FFFD marks those either way).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix_offset = 0  # window start: tokens before it are emitted and never re-read
        self._read_offset = 0  # tokens before it are emitted

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes (often "", sometimes several characters)."""
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """The text still held back (an incomplete character shows as U+FFFD)."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        emitted = self._decode(self._ids[self._prefix_offset : self._read_offset])
        current = self._decode(self._ids[self._prefix_offset :])
        if len(current) <= len(emitted) or (current.endswith(REPLACEMENT) and not final):
            return ""
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        return current[len(emitted) :]

    def _decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=True)) if ids else ""


class StopStringFilter:
    """Cuts a stream of text at the first stop string; the stop string itself never passes.

    Text that could be the start of a stop string is held back until the next piece shows
    whether it is one; `stopped` turns true once a stop string has been seen.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._held = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Add a piece; return the text that is now certainly part of the reply."""
        if self.stopped:
            return ""
        text = self._held + text
        ends = [index for stop in self._stops if (index := text.find(stop)) >= 0]
        if ends:
            self.stopped, self._held = True, ""
            return text[: min(ends)]
        keep = self._longest_stop_prefix_at_end(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """At the end of the reply: the held-back text (it turned out not to be a stop string)."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _longest_stop_prefix_at_end(self, text: str) -> int:
        longest = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:length]):
                    longest = length
                    break
        return longest


class ReplyText:
    """Turns generated token ids into reply text, piece by piece, handed to `emit`.

    Stop tokens (EOS) are never shown, text is detokenised incrementally (IncrementalDecoder) and
    cut at the first stop string (StopStringFilter); `stopped` turns true once a stop string has
    been seen, after which generation should end. Call `end()` once, after the last token.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        stops: Sequence[str],
        stop_token_ids: Sequence[int],
        emit: Callable[[str], None],
    ) -> None:
        self._decoder = IncrementalDecoder(tokenizer)
        self._filter = StopStringFilter(stops)
        self._stop_token_ids = set(stop_token_ids)
        self._emit = emit

    @property
    def stopped(self) -> bool:
        return self._filter.stopped

    def push(self, token_id: int) -> None:
        if token_id not in self._stop_token_ids:
            self._send(self._filter.push(self._decoder.push(token_id)))

    def end(self) -> None:
        self._send(self._filter.push(self._decoder.flush()) + self._filter.flush())

    def _send(self, text: str) -> None:
        if text:
            self._emit(text)


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


class ChatTemplate:
    """Renders chat messages into prompt token ids with the tokenizer's own chat template.

    Newer transformers (not 5.17) can encode control tokens typed by users as plain text, so that
    a message cannot forge a turn of its own ("<|im_end|><|im_start|>system"); it is used where
    available.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
        self._tokenizer = tokenizer
        self._name = name
        parameters = inspect.signature(tokenizer.apply_chat_template).parameters
        self._sanitize: dict[str, Any] = (
            {"sanitize_control_tokens": True} if "sanitize_control_tokens" in parameters else {}
        )

    def encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The prompt ids, ending with the assistant's generation prompt; ModelError if the
        template rejects the messages (some templates reject roles or their order)."""
        conversation = [{"role": m.role, "content": m.content} for m in messages]
        try:
            ids = self._tokenizer.apply_chat_template(
                conversation, add_generation_prompt=True, return_dict=False, **self._sanitize
            )
        except (TemplateError, ValueError) as error:
            raise ModelError(
                f"the chat template of {self._name} rejected the messages: {error}"
            ) from error
        return list(ids)


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


class HuggingFaceChatModel:
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
        self._model = model
        self._tokenizer = tokenizer
        self._name = name
        self._context_window = context_window_of(model, context_window)
        self.stop_token_ids = (
            tuple(stop_token_ids) if stop_token_ids is not None else eos_token_ids(model, tokenizer)
        )
        self.tokens_generated = 0
        self._template = ChatTemplate(tokenizer, name)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="botloom-generate")
        self._running: set[threading.Event] = set()
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt length in tokens; ModelError if the chat template rejects the messages."""
        return len(self._prompt_ids(messages))

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncGenerator[str, None]:
        """Yield the reply piece by piece.

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
        job = loop.run_in_executor(
            self._worker, self._generate, list(messages), params, emit, cancelled
        )
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

    def _prompt_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        return self._template.encode(messages)

    def _generate(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        emit: Callable[[str], None],
        cancelled: threading.Event,
    ) -> None:
        prompt_ids = self._prompt_ids(messages)
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


def context_window_of(model: PreTrainedModel, limit: int | None = None) -> int:
    """The model's context window (`max_position_embeddings`, else 2048), at most `limit`."""
    window = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    return min(window, limit) if limit else window


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> tuple[int, ...]:
    """The tokens that end a reply: the model's generation-config EOS ids and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = list(configured) if isinstance(configured, list) else [configured]
    ids.append(tokenizer.eos_token_id)
    return tuple(dict.fromkeys(i for i in ids if i is not None))


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

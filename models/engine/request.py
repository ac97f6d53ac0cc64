"""EngineRequest: one reply in the batching engine, between the event loop and a scheduler thread.

The event loop creates a request and submits it to a batcher (models/engine/dynamic.py or
models/engine/paged.py). From then on only the batcher's thread calls `push` (one generated token)
and `finish` (exactly once); text goes back to the event loop through the `emit` and `done`
callbacks, which the engine makes thread-safe with `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from models.api import GenerationParams, ModelError
from models.decoding import ReplyText

logger = logging.getLogger(__name__)


@dataclass
class EngineStats:
    """Counters a batcher keeps (written by its thread; read them for tests and benchmarks).

    `prompt_tokens` = `prefill_tokens` (computed) + `reused_tokens` (KV cache of earlier requests).
    `max_rows`: the most replies decoded in one step; `steps` and `batched_steps` (decode steps,
    those with two or more replies) and `prefill_passes` (forward passes that prefilled one or
    more prompts) are counted by the dynamic backend only.
    """

    requests: int = 0
    cancelled: int = 0
    steps: int = 0
    batched_steps: int = 0
    prefill_passes: int = 0
    max_rows: int = 0
    prompt_tokens: int = 0
    prefill_tokens: int = 0
    reused_tokens: int = 0
    tokens_generated: int = 0

    def count_step(self, rows: int) -> None:
        self.steps += 1
        self.max_rows = max(self.max_rows, rows)
        if rows > 1:
            self.batched_steps += 1


@dataclass(eq=False)
class EngineRequest:
    """A reply to generate: the prompt, how to sample, when to stop, and where the text goes.

    `push` records a token and says whether the reply goes on; it ends at a stop token, a stop
    string, `max_new_tokens`, or cancellation. `reused_tokens` is set by the batcher: prompt tokens
    whose KV cache came from an earlier request instead of being computed.
    """

    prompt_ids: list[int]
    params: GenerationParams
    max_new_tokens: int
    stop_token_ids: tuple[int, ...]
    text: ReplyText
    done: Callable[[BaseException | None], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    generated: list[int] = field(default_factory=list)
    reused_tokens: int = 0
    engine_id: str = ""  # the backend's name for it, where the backend needs one
    submitted_at: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    finished: bool = False
    error: BaseException | None = None

    def push(self, token_id: int) -> bool:
        """Add a generated token (its text goes to `emit`); True while the reply should go on."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.generated.append(token_id)
        self.text.push(token_id)
        return not (
            token_id in self.stop_token_ids
            or len(self.generated) >= self.max_new_tokens
            or self.text.stopped
            or self.cancelled.is_set()
        )

    def finish(self, error: BaseException | None = None) -> None:
        """End the reply (later calls do nothing): flush held-back text unless it was cancelled or
        failed, then report `error` (None: complete or cancelled) to the event loop."""
        if self.finished:
            return
        self.finished = True
        if error is None and not self.cancelled.is_set():
            try:
                self.text.end()
            except Exception as failure:  # the caller still hears that its reply ended
                error = generation_error(failure)
        self.error = error
        self.done(error)


NOT_FINITE = ModelError("generation failed: the model's scores for this reply are not finite")


def push_or_error(request: EngineRequest, token: int) -> bool | ModelError:
    """request.push(token), or the ModelError to fail that request alone with if its text, stop
    check or callback raised."""
    try:
        return request.push(token)
    except Exception as error:
        logger.exception("a reply's text or callback failed")
        return generation_error(error)


def finish_quietly(request: EngineRequest, error: BaseException | None) -> None:
    """request.finish(error); a callback that raises is logged and never stops the batch."""
    try:
        request.finish(error)
    except Exception:
        logger.exception("finishing a reply failed")


def generation_error(error: Exception) -> ModelError:
    failure = ModelError(f"generation failed: {error!r}")
    failure.__cause__ = error
    return failure

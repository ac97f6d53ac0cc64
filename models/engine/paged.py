"""PagedBatcher: the CUDA backend, transformers' ContinuousBatchingManager behind botloom's batcher.

The manager runs its own generation thread: a paged KV cache whose blocks are shared between
prompts that start alike (prefix sharing: the previous turn of a conversation, the system prompt of
all of them), continuous batching at every step, per-request cancellation, and CUDA graphs and
asynchronous batching where transformers turns them on (by default with flash attention; with
`cuda_graphs=True` also with SDPA). A router thread here takes each request's streamed tokens from
the manager's output queue and turns them into text (ReplyText), off the event loop.

What transformers' continuous batching does not do (5.17 to 5.24), and so this backend does not:
a repetition penalty (its processor is dropped), and greedy and sampled requests in one manager
(`do_sample` is per manager: with greedy `default_params` every request is greedy; otherwise a
greedy request samples at a near-zero temperature, which picks the argmax but for exact ties).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import logging
import threading
from typing import Any, cast

from transformers import GenerationConfig, PreTrainedModel
from transformers.generation.configuration_utils import ContinuousBatchingConfig

from models.api import GenerationParams, ModelError, ModelUnavailable
from models.engine.config import EngineConfig
from models.engine.request import EngineRequest, EngineStats

logger = logging.getLogger(__name__)

NEAR_ZERO_TEMPERATURE = 1e-5
CPU_CONTEXT_TOKENS = 2048  # off CUDA the cache is sized for this many tokens a request


class PagedBatcher:
    """Continuous batching with transformers' ContinuousBatchingManager (see the module doc).

    `submit` and `cancel` may be called from any thread; a cancelled request is finished at once
    and its blocks are freed by the manager before its next step.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        config: EngineConfig,
        *,
        default_params: GenerationParams | None = None,
    ) -> None:
        self.stats = EngineStats()
        self._model = model
        self._greedy = default_params is not None and default_params.temperature <= 0
        self._original_attention = model.config._attn_implementation
        settings = self._cb_settings(config)
        if "auto_switch_to_flash" not in settings and not _has_flash_attn():
            # transformers 5.17 would otherwise probe for a flash kernel on the hub, which an
            # offline machine cannot reach; later versions take `auto_switch_to_flash`.
            attention = str(self._original_attention)
            if "paged|" not in attention:
                base = "eager" if attention == "eager" else "sdpa"
                model.set_attn_implementation(f"paged|{base}")
        try:
            self._manager = cast(Any, model).init_continuous_batching(
                generation_config=self._generation_config(default_params),
                continuous_batching_config=ContinuousBatchingConfig(**settings),
            )
            self._manager.warmup()  # creates the cache now (and captures CUDA graphs if enabled)
        except Exception:
            self._restore_attention()
            raise
        self._count_prefix_reuse()
        self._requests: dict[str, EngineRequest] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._closed = False
        self._manager.start()
        self._router = threading.Thread(
            target=self._route, name="botloom-engine-router", daemon=True
        )
        self._router.start()

    @property
    def running(self) -> int:
        return len(self._requests)

    def submit(self, request: EngineRequest) -> None:
        request_id = f"botloom-{next(self._ids)}"
        with self._lock:
            if self._closed:
                request.finish(ModelUnavailable("the model is closed"))
                return
            self._requests[request_id] = request
            request.engine_id = request_id
        self.stats.requests += 1
        self.stats.prompt_tokens += len(request.prompt_ids)
        self.stats.prefill_tokens += len(request.prompt_ids)
        sampling: dict[str, Any] = {}
        if not self._greedy:
            p = request.params
            sampling = {
                "temperature": float(p.temperature) if p.temperature > 0 else NEAR_ZERO_TEMPERATURE,
                "top_p": float(p.top_p) if p.temperature > 0 else 1.0,
            }
        try:
            accepted = self._manager.add_request(
                list(request.prompt_ids),
                request_id=request_id,
                max_new_tokens=request.max_new_tokens,
                streaming=True,
                eos_token_id=list(request.stop_token_ids),
                **sampling,
            )
            failure: BaseException | None = None
            if accepted is None:  # the manager is stopping, or its thread died
                failure = ModelUnavailable("the generation thread is not running")
        except Exception as error:
            failure = ModelError(f"the request was refused: {error!r}")
            failure.__cause__ = error
        if failure is not None:
            with self._lock:
                self._requests.pop(request_id, None)
            request.finish(failure)

    def cancel(self, request: EngineRequest) -> None:
        request.cancelled.set()
        with self._lock:
            if self._requests.pop(request.engine_id, None) is None:
                return
            self._manager.cancel_request(request.engine_id)
            self.stats.cancelled += 1
            request.finish()

    def close(self) -> None:
        """Stop the manager and the router; unfinished requests get ModelUnavailable."""
        with self._lock:
            self._closed = True
        self._manager.stop(block=True, timeout=30, hard_stop=True)
        self._router.join()
        self._restore_attention()
        self._fail_all(ModelUnavailable("the model was closed during the reply"))

    def _restore_attention(self) -> None:
        """transformers 5.17 leaves a model it switched to paged attention paged, where a plain
        forward pass fails; later versions restore it when the manager stops."""
        if self._model.config._attn_implementation != self._original_attention:
            self._model.set_attn_implementation(self._original_attention)

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            self._closed = True  # nothing would serve later requests
            left, self._requests = list(self._requests.values()), {}
        for request in left:
            request.finish(error)

    # --- setup -----------------------------------------------------------------------------

    def _generation_config(self, default_params: GenerationParams | None) -> GenerationConfig:
        if self._greedy:
            return GenerationConfig(do_sample=False, max_new_tokens=256, eos_token_id=-1)
        # Sampling processors exist only for settings that differ from neutral at creation time;
        # each request then brings its own temperature and top_p.
        params = default_params or GenerationParams()
        temperature = params.temperature if params.temperature not in (0.0, 1.0) else 0.7
        top_p = params.top_p if params.top_p < 1.0 else 0.95
        return GenerationConfig(
            do_sample=True,
            temperature=float(temperature),
            top_p=float(top_p),
            top_k=None,
            max_new_tokens=256,
            eos_token_id=-1,
        )

    def _cb_settings(self, config: EngineConfig) -> dict[str, Any]:
        """ContinuousBatchingConfig arguments, spelled as the installed transformers spells them
        (5.17 says `block_size`; later versions `page_size`)."""
        names = {f.name for f in dataclasses.fields(ContinuousBatchingConfig)}
        on_cuda = self._model.device.type == "cuda"
        num_blocks = config.kv_cache_blocks
        if num_blocks is None and not on_cuda:  # off CUDA transformers would size it from RAM
            num_blocks = config.max_batch * -(-CPU_CONTEXT_TOKENS // config.block_size)
        settings: dict[str, Any] = {
            "page_size" if "page_size" in names else "block_size": config.block_size,
            "num_blocks": num_blocks,
            "max_batch_tokens": config.max_batch_tokens or (None if on_cuda else 512),
            "max_requests_per_batch": config.max_batch,
            "max_memory_percent": config.gpu_memory_fraction,
            "allow_block_sharing": True,
            "use_cuda_graph": config.cuda_graphs,
            "use_async_batching": config.async_batching,
            "per_request_processors": not self._greedy,
            "auto_switch_to_flash": _has_flash_attn(),
        }
        return {key: value for key, value in settings.items() if key in names}

    def _count_prefix_reuse(self) -> None:
        """Count, per request, the prompt tokens whose KV cache came from shared blocks: the
        manager's cache finds them in `search_prefix_match(request_id, prompt_ids)`."""
        cache = getattr(self._manager.batch_processor, "cache", None)
        search = getattr(cache, "search_prefix_match", None)
        if cache is None or search is None:
            logger.warning("cannot count prefix reuse with this transformers version")
            return

        def counting(request_id: str, prompt_ids: list[int]) -> int:
            found = search(request_id, prompt_ids)
            shared = min(int(found), max(len(prompt_ids) - 1, 0))  # one token is always computed
            request = self._requests.get(request_id)
            if request is not None:
                request.reused_tokens += shared
            self.stats.reused_tokens += shared
            self.stats.prefill_tokens -= shared
            return found

        cache.search_prefix_match = counting

    # --- the router thread -----------------------------------------------------------------

    def _route(self) -> None:
        while True:
            output = self._manager.get_result(timeout=0.05)
            if output is None:
                if not self._manager.is_running():  # closed, or its thread died
                    self._fail_all(ModelUnavailable("the generation thread has stopped"))
                    return
                continue
            with self._lock:
                request = self._requests.get(output.request_id)
                if request is None:  # cancelled, or already finished
                    continue
                try:
                    self._deliver(output.request_id, request, output)
                except Exception as error:  # a bug here must not leave the caller waiting
                    logger.exception("delivering generated tokens failed")
                    self._requests.pop(output.request_id, None)
                    self._manager.cancel_request(output.request_id)
                    failure = ModelError(f"generation failed: {error!r}")
                    failure.__cause__ = error
                    request.finish(failure)

    def _deliver(self, request_id: str, request: EngineRequest, output: Any) -> None:
        """Hand the output's new tokens to the request; finish it when it ends (called with the
        lock held)."""
        if output.error is not None:
            del self._requests[request_id]
            request.finish(ModelError(f"generation failed: {output.error}"))
            return
        tokens = output.generated_tokens
        new = tokens[len(request.generated) :]
        go_on = True
        for token in new:
            self.stats.tokens_generated += 1
            go_on = request.push(token)
            if not go_on:
                break
        # The manager counts no steps; its batch size is seen here.
        scheduler = getattr(self._manager.batch_processor, "scheduler", None)
        active = len(getattr(scheduler, "active_requests", None) or ())
        self.stats.max_rows = max(self.stats.max_rows, active)
        if go_on and not output.is_finished():
            return
        del self._requests[request_id]
        if not output.is_finished():  # a stop string (or a cancel): the manager would go on
            self._manager.cancel_request(request_id)
        if request.cancelled.is_set():  # its caller let go while this output was on its way
            self.stats.cancelled += 1
        request.finish()


def _has_flash_attn() -> bool:
    return importlib.util.find_spec("flash_attn") is not None

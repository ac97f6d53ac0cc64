"""DynamicBatcher: continuous batching with a hand-written decode loop (the CPU backend).

One scheduler thread owns the model. Between two decode steps it drops cancelled rows and admits
waiting requests: the newcomers are prefilled together in one forward pass where their padding
allows (only the part of each prompt that the PrefixCache does not already hold), their first
tokens are chosen, and their KV caches join the batch.
A decode step then advances every row by one token in a single forward pass: input [rows, 1]
against the rows' KV caches left-padded to a common width in preallocated slots (BatchKV), with
per-row position ids. A row leaves as soon as its reply ends; its KV cache goes to the
PrefixCache, where the conversation's next turn finds it. On the CPU the batcher runs its own copy
of a float32 model (models/engine/cpu_model.py: float16, bfloat16, int8 or packed float32 weights).

Why not `generate` on a padded batch: a static batch waits for its longest reply and admits nobody
meanwhile. Why not transformers' ContinuousBatchingManager (the CUDA backend) on the CPU too:
measured side by side with the embedded default (bench/engine.py --with-paged) it generated fewer
tokens per second than this backend, even before this backend's weights were packed and its prefills
batched (see bench/results/design-measurements.md), and it has no repetition penalty, so its replies
differ from serial `generate`'s; this backend's are the same.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from models.api import ModelError, ModelUnavailable
from models.engine.cpu_model import (
    default_prefix_cache_bytes,
    kv_bytes_per_token,
    prepare_model,
    supports_dynamic_batching,
)
from models.engine.kv import BatchKV, LayerKV
from models.engine.prefill import Prefill, next_prefill_group, run_prefill
from models.engine.prefix_cache import PrefixCache
from models.engine.request import (
    NOT_FINITE,
    EngineRequest,
    EngineStats,
    finish_quietly,
    generation_error,
    push_or_error,
)
from models.engine.sampling import SeenTokens, choose_tokens, finite_rows
from models.engine_choices import EngineWeights

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Row:
    request: EngineRequest
    length: int  # tokens in this row's KV cache: the prompt and every reply token but the newest
    next_token: int  # the newest reply token: the row's input at the next decode step


class DynamicBatcher:
    """Generates up to `max_batch` replies at once in one scheduler thread; more wait in FIFO
    order. `prefix_cache_tokens` and `prefix_cache_bytes` (None: default_prefix_cache_bytes)
    bound the PrefixCache (0 tokens turns prefix reuse off). `weights`, `pack_weights`: see
    models/engine/cpu_model.prepare_model ("float32" here by default, EngineConfig's "auto").

    `submit` and `cancel` may be called from any thread. A cancelled request leaves the batch
    before the next decode step (a waiting one at once) and is finished without error. A request
    whose step fails on its own (its text, stop check or callback raises, or its logits are not
    finite) is finished with ModelError and leaves; the other rows go on unchanged.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        max_batch: int = 16,
        prefix_cache_tokens: int = 16384,
        pack_weights: bool = True,
        weights: EngineWeights = "float32",
        prefix_cache_bytes: int | None = None,
        int4_group_size: int = 32,
    ) -> None:
        if not supports_dynamic_batching(model):
            raise ValueError(f"{type(model).__name__} cannot be batched by DynamicBatcher")
        sizes = {"max_batch": max_batch, "int4_group_size": int4_group_size}
        self.runner = prepare_model(model, weights=weights, pack_weights=pack_weights, **sizes)
        self.packed = self.runner.weights == "packed"
        self._model = self.runner.model
        self._device = model.device
        self._cache_argument = self.runner.cache_argument
        self._max_batch = max_batch
        self._kv_dtype = self.runner.kv_dtype
        self._token_bytes = kv_bytes_per_token(model, self._kv_dtype)
        if prefix_cache_bytes is None:
            prefix_cache_bytes = default_prefix_cache_bytes(model)
        self.prefixes = PrefixCache(prefix_cache_tokens, prefix_cache_bytes)
        self.stats = EngineStats()
        self._waiting: deque[EngineRequest] = deque()
        self._wake = threading.Condition()
        self._closed = False
        # The batch: its rows, their KV cache, and the tokens each row contains (for the
        # repetition penalty).
        self._rows: list[_Row] = []
        self._kv = BatchKV(model.config, self._device, max_rows=max_batch, dtype=self._kv_dtype)
        self._seen = SeenTokens()
        self._thread = threading.Thread(target=self._run, name="botloom-engine", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._rows)

    def submit(self, request: EngineRequest) -> None:
        with self._wake:
            if self._closed:
                request.finish(ModelUnavailable("the model is closed"))
                return
            self._waiting.append(request)
            self._wake.notify()

    def cancel(self, request: EngineRequest) -> None:
        request.cancelled.set()
        with self._wake:
            if request in self._waiting:  # never started: its slot is free at once
                self._waiting.remove(request)
                self.stats.cancelled += 1
                request.finish()
            self._wake.notify()

    def close(self) -> None:
        """Stop after the current forward pass; unfinished requests get ModelUnavailable."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    # --- the scheduler thread ------------------------------------------------------------

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self._wake:
                    while not (self._closed or self._waiting or self._rows):
                        self._wake.wait()
                    if self._closed:
                        break
                    free = self._max_batch - len(self._rows)
                    joining = [
                        self._waiting.popleft() for _ in range(min(free, len(self._waiting)))
                    ]
                try:
                    self._step(joining)
                    if not self._rows and not self._waiting:
                        self.runner.release_idle_memory()  # idle: back to the OS
                except Exception as error:  # a bug here must not leave callers waiting forever
                    logger.exception("the engine's scheduler failed")
                    for request in joining:  # finishing is idempotent: admitted ones are no-ops
                        request.finish(generation_error(error))
                    self._fail_all(generation_error(error), waiting=False)
        self._fail_all(ModelUnavailable("the model was closed during the reply"))

    def _step(self, joining: list[EngineRequest]) -> None:
        """Between two decode steps: drop cancelled rows, admit newcomers; then one step."""
        self._leave([i for i, row in enumerate(self._rows) if row.request.cancelled.is_set()])
        self._admit(joining)
        if self._rows:
            self._decode_step()

    def _admit(self, requests: list[EngineRequest]) -> None:
        pending: list[EngineRequest] = []
        for request in requests:
            if request.cancelled.is_set():
                self.stats.cancelled += 1
                request.finish()
            else:
                pending.append(request)
        joined: list[tuple[_Row, LayerKV]] = []
        while pending:
            group, pending = next_prefill_group(pending, self.prefixes)
            try:
                joined.extend(self._prefill(group))
            except Exception as error:
                logger.exception("prefill failed")
                for prefill in group:
                    prefill.request.finish(generation_error(error))
        if joined:
            self._kv.add([kv for _, kv in joined], [row.length for row, _ in joined])
            self._seen.add_rows(
                [row.request.prompt_ids + row.request.generated for row, _ in joined]
            )
            self._rows.extend(row for row, _ in joined)

    def _prefill(self, group: list[Prefill]) -> list[tuple[_Row, LayerKV]]:
        """Run the prompts of `group` (what the PrefixCache lacks of each) in one forward pass
        (run_prefill) and choose their first tokens.

        Returns a new row for each reply that goes on, with its KV cache (per layer
        [1, kv_heads, prompt, head_dim]).
        """
        kvs, last_logits = run_prefill(
            self._model,
            group,
            device=self._device,
            cache_argument=self._cache_argument,
            kv_dtype=self._kv_dtype,
        )
        self.stats.prefill_passes += 1
        logits, broken = finite_rows(last_logits)  # [rows, vocab]
        seen = SeenTokens()
        seen.add_rows([p.request.prompt_ids for p in group])
        tokens = choose_tokens(logits, [p.request.params for p in group], seen)
        started = []
        for i, (p, token, kv) in enumerate(zip(group, tokens, kvs, strict=True)):
            request, ids = p.request, p.request.prompt_ids
            request.reused_tokens = p.reused
            self.stats.requests += 1
            self.stats.prompt_tokens += len(ids)
            self.stats.prefill_tokens += p.suffix
            self.stats.reused_tokens += p.reused
            self.prefixes.store(ids, kv)
            self.stats.tokens_generated += 1
            row = _Row(request, length=len(ids), next_token=token)
            failure = NOT_FINITE if i in broken else None
            go_on = failure is None and push_or_error(request, token)
            if isinstance(go_on, ModelError) or failure is not None:
                finish_quietly(request, failure or go_on)
            elif go_on:
                started.append((row, kv))
            else:
                self._retire(row, kv)
        return started

    def _decode_step(self) -> None:
        rows = self._rows
        try:
            logits = self.runner.decode(
                self._kv, [row.next_token for row in rows], [row.length for row in rows]
            )
            logits, broken = finite_rows(logits)
            tokens = choose_tokens(logits, [row.request.params for row in rows], self._seen)
        except Exception as error:  # the whole batch's forward failed
            logger.exception("decode step failed")
            self._fail_all(generation_error(error), waiting=False)
            return
        self._seen.add(tokens)
        self.stats.count_step(len(rows))
        self.stats.tokens_generated += len(rows)
        leaving: list[int] = []
        failed: dict[int, ModelError] = {}
        for index, (row, token) in enumerate(zip(rows, tokens, strict=True)):
            row.length += 1
            row.next_token = token
            go_on = NOT_FINITE if index in broken else push_or_error(row.request, token)
            if isinstance(go_on, ModelError):
                failed[index] = go_on
            elif not go_on:
                leaving.append(index)
        self._leave(leaving, failed)

    def _leave(self, indices: list[int], failed: dict[int, ModelError] | None = None) -> None:
        """Remove rows from the batch (their replies ended, were cancelled, or `failed`) and
        finish them."""
        failed = failed or {}
        if not indices and not failed:
            return
        for index in indices:
            row = self._rows[index]
            fits = self.prefixes.fits(row.length, self._token_bytes)
            self._retire(row, self._kv.row(index) if fits else [])
        for index, error in failed.items():
            finish_quietly(self._rows[index].request, error)
        order = self._kv.remove([*indices, *failed])
        self._rows = [self._rows[i] for i in order]
        self._seen.keep(order)

    def _retire(self, row: _Row, kv: LayerKV) -> None:
        request = row.request
        if kv:
            self.prefixes.store((request.prompt_ids + request.generated)[: row.length], kv)
        if request.cancelled.is_set():
            self.stats.cancelled += 1
        finish_quietly(request, None)

    def _fail_all(self, error: BaseException, *, waiting: bool = True) -> None:
        failed = [row.request for row in self._rows]
        self._rows = []
        self._kv.clear()
        self._seen = SeenTokens()
        if waiting:
            with self._wake:
                failed.extend(self._waiting)
                self._waiting.clear()
        for request in failed:
            finish_quietly(request, error)

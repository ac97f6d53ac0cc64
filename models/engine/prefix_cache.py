"""PrefixCache: KV caches of recent sequences, so a prompt that repeats one prefills only the rest.

Every chat turn re-sends the conversation: system prompt, history, new message. If the KV cache of
the previous turn's prompt and reply is still here, the next turn computes only its new tokens.
Prompts of different conversations share at least the system prompt.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from models.engine.kv import LayerKV


@dataclass(eq=False)
class _Entry:
    ids: torch.Tensor  # [tokens] int64, on the CPU
    kv: LayerKV
    nbytes: int  # of the tensors in kv


class PrefixCache:
    """Keeps the KV cache of up to `max_tokens` tokens and `max_bytes` bytes (of the stored
    tensors; None: no byte bound) of recent sequences, least recently used evicted first. Stored
    tensors are never written in place (callers must not either), so a match hands out views of
    them without copying. Not thread-safe: one scheduler thread owns it.
    """

    def __init__(self, max_tokens: int, max_bytes: int | None = None) -> None:
        self.max_tokens = max_tokens
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._tokens = 0
        self._bytes = 0
        self._next_key = 0

    @property
    def tokens(self) -> int:
        """Tokens held in all."""
        return self._tokens

    @property
    def bytes(self) -> int:
        """Bytes of the KV tensors held in all."""
        return self._bytes

    def fits(self, tokens: int, token_bytes: int) -> bool:
        """Whether a sequence of `tokens` tokens of `token_bytes` each could be stored."""
        limit = self.max_bytes
        return 0 < tokens <= self.max_tokens and (limit is None or tokens * token_bytes <= limit)

    def match(self, ids: list[int]) -> tuple[int, LayerKV | None]:
        """(n, kv): the KV cache of `ids[:n]`, the longest stored prefix of `ids`, or (0, None).

        At least the last token of `ids` is left out (n < len(ids)): the caller must run the model
        on one token at least to get the next token's logits.
        """
        if not self._entries or len(ids) < 2:
            return 0, None
        wanted = torch.tensor(ids)
        best_key, best = -1, 0
        for key, entry in self._entries.items():
            length = _common_prefix_length(entry.ids, wanted)
            if length > best:
                best_key, best = key, length
        best = min(best, len(ids) - 1)
        if best <= 0:
            return 0, None
        self._entries.move_to_end(best_key)
        entry = self._entries[best_key]
        return best, [(k[:, :, :best], v[:, :, :best]) for k, v in entry.kv]

    def store(self, ids: list[int], kv: LayerKV) -> None:
        """Keep the KV cache of `ids` (each tensor [1, kv_heads, len(ids), head_dim]).

        Entries that are prefixes of `ids` are dropped: the new entry answers for them.
        """
        size = _nbytes(kv)
        too_big = self.max_bytes is not None and size > self.max_bytes
        if not ids or len(ids) > self.max_tokens or too_big:
            return
        new_ids = torch.tensor(ids)
        for key, entry in list(self._entries.items()):
            if len(entry.ids) <= len(ids) and _common_prefix_length(entry.ids, new_ids) == len(
                entry.ids
            ):
                self._remove(key)
        self._entries[self._next_key] = _Entry(new_ids, kv, size)
        self._next_key += 1
        self._tokens += len(ids)
        self._bytes += size
        while self._tokens > self.max_tokens or not self._within_bytes(0):
            self._remove(next(iter(self._entries)))

    def clear(self) -> None:
        self._entries.clear()
        self._tokens = self._bytes = 0

    def _within_bytes(self, more: int) -> bool:
        return self.max_bytes is None or self._bytes + more <= self.max_bytes

    def _remove(self, key: int) -> None:
        entry = self._entries.pop(key)
        self._tokens -= len(entry.ids)
        self._bytes -= entry.nbytes


def _nbytes(kv: LayerKV) -> int:
    return sum(k.nbytes + v.nbytes for k, v in kv)


def _common_prefix_length(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(len(a), len(b))
    differs = (a[:n] != b[:n]).nonzero()
    return int(differs[0]) if len(differs) else n

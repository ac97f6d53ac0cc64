"""BatchKV: the KV cache of a batch of replies of different lengths, decoded one step at a time.

Per layer, keys and values are [rows, kv_heads, width, head_dim]. Each row's tokens sit at the
right end (left padding); `mask` [rows, width] is 1 where a row has a real token, and position ids
are per row, so padding changes nothing but the cost. Rows join (newly prefilled replies) and
leave (finished ones) between decode steps; columns that are padding in every row are dropped.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PretrainedConfig
from transformers.cache_utils import DynamicLayer

# Per layer (keys, values), each [rows, kv_heads, tokens, head_dim].
LayerKV = list[tuple[torch.Tensor, torch.Tensor]]


class RoomyLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views of buffers with room to spare at the end,
    so that a decode step writes its token in place; DynamicLayer.update concatenates, copying
    the whole cache of every layer at every step."""

    _layer_type = None  # never registered as the default layer of any attention type

    def hold(self, keys: torch.Tensor, values: torch.Tensor, spare: int) -> None:
        """Take `keys` and `values` ([rows, heads, tokens, dim], copied) with `spare` free slots."""
        self.lazy_initialization(keys, values)
        rows, heads, tokens, dim = keys.shape
        self._key_buffer = keys.new_empty(rows, heads, tokens + spare, dim)
        self._value_buffer = values.new_empty(rows, heads, tokens + spare, dim)
        self._key_buffer[:, :, :tokens] = keys
        self._value_buffer[:, :, :tokens] = values
        self._used = tokens
        self._expose()

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        new = key_states.shape[-2]
        if self._used + new > self._key_buffer.shape[-2]:
            keys, values = layer_kv(self)
            self.hold(keys, values, spare=max(64, 2 * new, self._used // 2))
        self._key_buffer[:, :, self._used : self._used + new] = key_states
        self._value_buffer[:, :, self._used : self._used + new] = value_states
        self._used += new
        self._expose()
        return layer_kv(self)

    def _expose(self) -> None:
        self.keys = self._key_buffer[:, :, : self._used]
        self.values = self._value_buffer[:, :, : self._used]


class BatchKV:
    """The batch's KV cache (`cache`, for the model's forward) and attention `mask`.

    `spare`: token slots allocated ahead, so most decode steps write in place.
    """

    def __init__(self, config: PretrainedConfig, device: torch.device, spare: int = 64) -> None:
        self._config = config
        self._device = device
        self._spare = spare
        self.cache = DynamicCache(config=config)
        self.mask = torch.zeros(0, 0, dtype=torch.long, device=device)

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    def next_mask(self) -> torch.Tensor:
        """The mask for the coming decode step: one more real token in every row."""
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.rows, 1)], dim=1)
        return self.mask

    def add(self, kvs: list[LayerKV], lengths: list[int]) -> None:
        """Append rows: `kvs[i]` holds `lengths[i]` tokens ([1, heads, lengths[i], dim] a layer)."""
        width = max([self.width, *lengths])
        layers = len(kvs[0])
        merged: LayerKV = []
        for index in range(layers):
            keys = [kv[index][0] for kv in kvs]
            values = [kv[index][1] for kv in kvs]
            if self.rows:
                old_keys, old_values = layer_kv(self.cache.layers[index])
                keys.insert(0, old_keys)
                values.insert(0, old_values)
            merged.append(
                (
                    torch.cat([_pad(k, width) for k in keys]),
                    torch.cat([_pad(v, width) for v in values]),
                )
            )
        ones = [torch.ones(1, n, dtype=torch.long, device=self._device) for n in lengths]
        masks = [F.pad(m, (width - m.shape[1], 0)) for m in [self.mask, *ones] if m.numel()]
        self.mask = torch.cat(masks)
        self._hold(merged)

    def keep(self, indices: list[int]) -> None:
        """Keep only these rows (in this order); trim columns that are now padding everywhere."""
        if not indices:
            self.cache = DynamicCache(config=self._config)
            self.mask = self.mask.new_zeros(0, 0)
            return
        rows = torch.tensor(indices, device=self._device)
        mask = self.mask[rows]
        width = int(mask.sum(dim=1).max())  # the longest remaining row
        self.mask = mask[:, -width:]
        kept = [layer_kv(layer) for layer in self.cache.layers]
        self._hold([(k[rows, :, -width:], v[rows, :, -width:]) for k, v in kept])

    def row(self, index: int) -> LayerKV:
        """A copy of one row's KV cache, without its padding: per layer [1, heads, tokens, dim]."""
        start = self.width - int(self.mask[index].sum())
        kv = [layer_kv(layer) for layer in self.cache.layers]
        return [
            (k[index : index + 1, :, start:].clone(), v[index : index + 1, :, start:].clone())
            for k, v in kv
        ]

    def _hold(self, kv: LayerKV) -> None:
        layers = []
        for keys, values in kv:
            layer = RoomyLayer()
            layer.hold(keys, values, self._spare)
            layers.append(layer)
        self.cache.layers = cast(list[Any], layers)


def fill_cache(cache: DynamicCache, kv: LayerKV) -> None:
    """Make the (new, empty) `cache` hold `kv` without copying it; the model's next forward
    appends to it by concatenation, so `kv` itself is never written."""
    for layer, (keys, values) in zip(cast(list[Any], cache.layers), kv, strict=True):
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values


def layer_kv(layer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A cache layer's (keys, values), each [rows, kv_heads, tokens, head_dim]."""
    return layer.keys, layer.values


def _pad(kv: torch.Tensor, width: int) -> torch.Tensor:
    """[rows, heads, tokens, dim] -> [rows, heads, width, dim], zeros in front (masked out)."""
    return F.pad(kv, (0, 0, width - kv.shape[-2], 0))

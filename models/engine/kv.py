"""BatchKV: the KV cache of a batch of replies of different lengths, decoded one step at a time.

Per layer, keys and values live in preallocated buffers [capacity rows, kv_heads, capacity
columns, head_dim]. The batch's rows are the first `rows` of them; every row's tokens end at the
same column (left padding), so the model sees views [rows, kv_heads, width, head_dim] and `mask`
[rows, width] (1 where a row has a real token); position ids are per row, so padding changes
nothing but the cost. A decode step writes its token of every row in place, in the next column.

Rows join (newly prefilled replies) and leave (finished ones) between decode steps. A joining row
is copied into the next free slot; a leaving row's slot is filled by moving the last row into it,
so the rows' order changes (`remove` says how). Neither copies the rest of the batch, which the
earlier layout (one tight tensor per layer, rebuilt at every join and leave) did, at a noticeable
share of the scheduler's time with many conversations (see bench/results/design-measurements.md).
The buffers are reallocated (the batch copied once)
only when they run out of columns, rows, or room on the left for a prompt longer than the rest.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from transformers import DynamicCache, PretrainedConfig
from transformers.cache_utils import DynamicLayer

# Per layer (keys, values), each [rows, kv_heads, tokens, head_dim].
LayerKV = list[tuple[torch.Tensor, torch.Tensor]]


class SlotLayer(DynamicLayer):
    """One layer of a BatchKV, as the model's forward sees it: `keys` and `values` are views of
    the batch's buffers, and `update` writes a decode step's token in place (DynamicLayer.update
    concatenates, copying the whole cache of every layer at every step)."""

    _layer_type = None  # never registered as the default layer of any attention type

    def __init__(self) -> None:
        super().__init__()
        self.key_buffer = torch.zeros(0, 0, 0, 0)
        self.value_buffer = torch.zeros(0, 0, 0, 0)
        self.rows = self.start = self.column = 0

    def show(self, rows: int, start: int, end: int) -> None:
        """Expose columns [start, end) of the first `rows` rows; the next token goes to `end`."""
        self.rows, self.start, self.column = rows, start, end
        self.keys = self.key_buffer[:rows, :, start:end]
        self.values = self.value_buffer[:rows, :, start:end]
        self.device = self.key_buffer.device
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if key_states.shape[-2] != 1 or key_states.shape[0] != self.rows:
            raise ValueError("a BatchKV layer takes one token of every row per step")
        self.key_buffer[: self.rows, :, self.column] = key_states[:, :, 0]
        self.value_buffer[: self.rows, :, self.column] = value_states[:, :, 0]
        self.show(self.rows, self.start, self.column + 1)
        return self.keys, self.values


class BatchKV:
    """The batch's KV cache (`cache`, for the model's forward) and attention `mask`.

    `spare`: columns allocated ahead on the right (decode steps) and half as many on the left
    (joining prompts longer than the batch); `max_rows`: the most rows the buffers are sized for;
    `dtype`: the buffers' (None: that of the first rows added; rows of another are converted).
    `reallocations` counts the times the batch was copied into new buffers.
    """

    def __init__(
        self,
        config: PretrainedConfig,
        device: torch.device,
        spare: int = 64,
        max_rows: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self._device = device
        self._dtype = dtype
        self._spare = max(1, spare)
        self._max_rows = max_rows
        self.cache = DynamicCache(config=config)
        self._layers = cast(list[SlotLayer], [SlotLayer() for _ in self.cache.layers])
        self.cache.layers = cast(list[Any], self._layers)
        self._mask = torch.zeros(0, 0, dtype=torch.long, device=device)
        self._lengths: list[int] = []  # real tokens of each row
        self._start = self._end = 0  # the batch's columns in the buffers
        self.reallocations = 0

    @property
    def rows(self) -> int:
        return len(self._lengths)

    @property
    def width(self) -> int:
        return self._end - self._start

    @property
    def lengths(self) -> list[int]:
        return list(self._lengths)

    @property
    def mask(self) -> torch.Tensor:
        """[rows, width]: 1 where a row has a real token."""
        return self._mask[: self.rows, self._start : self._end]

    def next_mask(self) -> torch.Tensor:
        """Make room for the coming decode step (one more real token in every row) and return
        its mask; the cache's layers write that token in place during the forward."""
        if self._end == self._mask.shape[1]:
            self._reallocate(self.rows, self.width)
        self._mask[: self.rows, self._end] = 1
        self._lengths = [n + 1 for n in self._lengths]
        for layer in self._layers:
            layer.show(self.rows, self._start, self._end)
        self._end += 1
        return self.mask

    def add(self, kvs: list[LayerKV], lengths: list[int]) -> None:
        """Append rows: `kvs[i]` holds `lengths[i]` tokens ([1, heads, lengths[i], dim] a layer)."""
        rows = self.rows + len(kvs)
        longest = max(lengths)
        if not self._layers[0].key_buffer.numel():
            self._allocate(kvs[0], rows, longest)
        elif rows > self._mask.shape[0] or longest > self._end:
            self._reallocate(rows, max(longest, self.width))
        start = min(self._start, self._end - longest)
        if start < self._start:  # newly exposed columns of the old rows: padding
            for layer in self._layers:
                layer.key_buffer[: self.rows, :, start : self._start] = 0
                layer.value_buffer[: self.rows, :, start : self._start] = 0
        self._start = start
        for kv, length in zip(kvs, lengths, strict=True):
            row, first = len(self._lengths), self._end - length
            for layer, (keys, values) in zip(self._layers, kv, strict=True):
                layer.key_buffer[row, :, start:first] = 0
                layer.value_buffer[row, :, start:first] = 0
                layer.key_buffer[row, :, first : self._end] = keys[0]
                layer.value_buffer[row, :, first : self._end] = values[0]
            self._mask[row] = 0
            self._mask[row, first : self._end] = 1
            self._lengths.append(length)
        self._show()

    def remove(self, indices: list[int]) -> list[int]:
        """Remove these rows. The last rows move into the freed slots: returns the new order,
        as the old index of each remaining row."""
        order, lengths = list(range(self.rows)), list(self._lengths)
        for index in sorted(set(indices), reverse=True):
            last = len(order) - 1
            if index != last:
                order[index], lengths[index] = order[last], lengths[last]
            order.pop()
            lengths.pop()
        self._lengths = lengths
        if not lengths:
            self.clear()
            return order
        start = self._end - max(lengths)
        for slot, old in enumerate(order):
            if slot != old:  # a row from the tail (old >= len(order): never overwritten here)
                self._move(old, slot, start)
        self._start = start
        self._show()
        return order

    def _move(self, old: int, slot: int, start: int) -> None:
        """Row `old` into `slot`: its tokens copied, the slot's padding from `start` zeroed (the
        whole window was copied before: twice the bytes where rows differ in length)."""
        first = self._end - self._lengths[slot]
        for layer in self._layers:
            for buffer in (layer.key_buffer, layer.value_buffer):
                buffer[slot, :, first : self._end] = buffer[old, :, first : self._end]
                buffer[slot, :, start:first] = 0
        self._mask[slot] = self._mask[old]

    def clear(self) -> None:
        """Remove every row and let the buffers go."""
        self._lengths = []
        for layer in self._layers:
            layer.key_buffer = layer.value_buffer = torch.zeros(0, 0, 0, 0)
            layer.show(0, 0, 0)
        self._mask = self._mask.new_zeros(0, 0)
        self._start = self._end = 0

    def row(self, index: int) -> LayerKV:
        """A copy of one row's KV cache, without its padding: per layer [1, heads, tokens, dim]."""
        first = self._end - self._lengths[index]
        return [
            (
                layer.key_buffer[index : index + 1, :, first : self._end].clone(),
                layer.value_buffer[index : index + 1, :, first : self._end].clone(),
            )
            for layer in self._layers
        ]

    def _allocate(self, example: LayerKV, rows: int, width: int) -> None:
        """First buffers, shaped like `example`'s layers, for `rows` rows of up to `width`."""
        capacity = self._row_capacity(rows)
        self._end = self._start = width + self._spare // 2
        columns = self._end + self._spare
        for layer, (keys, values) in zip(self._layers, example, strict=True):
            _, heads, _, dim = keys.shape
            dtype = self._dtype or keys.dtype
            layer.key_buffer = keys.new_empty(capacity, heads, columns, dim, dtype=dtype)
            layer.value_buffer = values.new_empty(
                capacity, values.shape[1], columns, dim, dtype=dtype
            )
        self._mask = torch.zeros(capacity, columns, dtype=torch.long, device=self._device)

    def _reallocate(self, rows: int, width: int) -> None:
        """New buffers for `rows` rows with `width` columns of room before the end (at least the
        batch's width) and `spare` after; the batch is copied over."""
        self.reallocations += 1
        capacity = max(self._mask.shape[0], self._row_capacity(rows))
        end = max(width, self.width) + self._spare // 2
        start = end - self.width
        columns = end + self._spare
        old = slice(self._start, self._end)
        for layer in self._layers:
            for name in ("key_buffer", "value_buffer"):
                buffer = getattr(layer, name)
                # Left uninitialised: every column the model sees is written or zeroed first.
                new = buffer.new_empty(capacity, buffer.shape[1], columns, buffer.shape[3])
                new[: self.rows, :, start:end] = buffer[: self.rows, :, old]
                setattr(layer, name, new)
        mask = self._mask.new_zeros(capacity, columns)
        mask[: self.rows, start:end] = self._mask[: self.rows, old]
        self._mask = mask
        self._start, self._end = start, end
        self._show()

    def _row_capacity(self, rows: int) -> int:
        """Rows to allocate: room to double, up to `max_rows` (never fewer than needed)."""
        limit = self._max_rows if self._max_rows is not None else 2 * rows
        return max(rows, min(limit, 2 * rows))

    def _show(self) -> None:
        for layer in self._layers:
            layer.show(self.rows, self._start, self._end)


def fill_cache(cache: DynamicCache, kv: LayerKV) -> None:
    """Make the (new, empty) `cache` hold `kv` without copying it; the model's next forward
    appends to it by concatenation, so `kv` itself is never written."""
    for layer, (keys, values) in zip(cast(list[Any], cache.layers), kv, strict=True):
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values


def layer_kv(layer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A cache layer's (keys, values), each [rows, kv_heads, tokens, head_dim]."""
    return layer.keys, layer.values


def cast_kv(kv: LayerKV, dtype: torch.dtype) -> LayerKV:
    """`kv` in `dtype` (the same tensors where they already are)."""
    return [(keys.to(dtype), values.to(dtype)) for keys, values in kv]

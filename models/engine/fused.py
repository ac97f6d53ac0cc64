"""The copy of a model whose linear layers run on 16-bit packed weights (bf16_linear.py,
fp16_linear.py), with q/k/v and gate/up fused into one product each.

`fused_copy(model, make_layer, table_dtype)` deep-copies `model`, replaces every `nn.Linear` by
`make_layer(weight, bias)` and its input embedding by a FileEmbedding mapped from the model's
safetensors file (models/engine/file_embedding.py) or, where it was not loaded from one, a
`HalfEmbedding` on a 16-bit copy. q/k/v and gate/up become one layer each, kept as
`botloom_qkv` / `botloom_gate_up` on their parent (what the compact decode step of
models/engine/compact.py uses). A packed weight has no row views, so transformers' own forward
(prefill) reaches the fused product through `FusedPart`s: the first part called computes the
fused product of its input, the others called with the same input tensor take their columns of
it. The caller's model is left unchanged.

`HalfLinear` is what the two packed layers share (shapes, bias, float32 in and out), `agrees`
the check each runs before a copy is made: its kernel against F.linear on the rounded weight.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from models.engine.file_embedding import file_embedding

FUSED = {"qkv": ("q_proj", "k_proj", "v_proj"), "gate_up": ("gate_proj", "up_proj")}

# (float weight [out, in], bias or None) -> a module computing x @ weight.T + bias in float32.
LayerFactory = Callable[[torch.Tensor, "torch.Tensor | None"], nn.Module]


class HalfLinear(nn.Module):
    """Base of the 16-bit packed layers (Bf16Linear, Fp16Linear): `nn.Linear` on a packed
    weight [out, in], float32 in and out, the bias added in float32; inference only, CPU only.
    A subclass packs the weight in its `__init__` and multiplies in `product`."""

    kind = "16-bit"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.bias = None if bias is None else bias.detach().float().clone()

    def product(self, flat: torch.Tensor) -> torch.Tensor:
        """`flat` [rows, in] (float32) times the packed weight: [rows, out] float32."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.product(x.reshape(-1, self.in_features))
        if self.bias is not None:
            out += self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.kind}"


def agrees(
    make_layer: LayerFactory,
    rounded: Callable[[torch.Tensor], torch.Tensor],
    round_inputs: bool,
    tolerance: float,
    weight: torch.Tensor | None = None,
) -> bool:
    """Whether `make_layer`'s layers match F.linear on the weight (random, or `weight` [48, 64])
    as `rounded` (and the input too where `round_inputs`) here, within `tolerance` (a broken
    build of the kernel fails)."""
    generator = torch.Generator().manual_seed(0)
    if weight is None:
        weight = torch.randn(48, 64, generator=generator)
    bias = torch.randn(48, generator=generator)
    layer = make_layer(weight, bias)
    for rows in (1, 3, 40):
        x = torch.randn(rows, 64, generator=generator)
        with torch.no_grad():
            got = layer(x)
            expected = F.linear(rounded(x) if round_inputs else x, rounded(weight), bias)
        scale = tolerance * float(expected.abs().mean())
        if not torch.allclose(got, expected, rtol=tolerance, atol=scale):
            return False
    return True


class FusedPart(nn.Module):
    """Output columns [start, end) of a fused layer, for code that calls the parts one by one
    (q_proj, k_proj, v_proj on the same input): the fused product of an input is computed once
    and handed to the other parts called with that same tensor."""

    def __init__(self, fused: _FusedOutputs, start: int, end: int) -> None:
        super().__init__()
        self._fused = fused
        self.start, self.end = start, end
        self.out_features = end - start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fused.output(x)[..., self.start : self.end]


class _FusedOutputs:
    """The fused layer and its last (input, output); the output is dropped once every part
    has taken it, so no activation outlives its layer."""

    def __init__(self, layer: nn.Module, parts: int) -> None:
        self.layer, self._parts = layer, parts
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None
        self._taken = 0

    def output(self, x: torch.Tensor) -> torch.Tensor:
        if self._input is not x or self._output is None:
            self._input, self._output, self._taken = x, self.layer(x), 0
        out = self._output
        self._taken += 1
        if self._taken >= self._parts:
            self._input = self._output = None
        return out


class HalfEmbedding(nn.Module):
    """An input embedding on a 16-bit matrix, float32 out."""

    def __init__(self, weight: torch.Tensor, padding_idx: int | None) -> None:
        super().__init__()
        self.weight = weight
        self.padding_idx = padding_idx
        self.num_embeddings, self.embedding_dim = weight.shape

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight).float()


def _fuse(parent: nn.Module, names: tuple[str, ...], make_layer: LayerFactory) -> nn.Module | None:
    layers = [getattr(parent, name, None) for name in names]
    if not all(type(layer) is nn.Linear for layer in layers):
        return None
    weight = torch.cat([layer.weight.detach() for layer in layers])  # type: ignore[union-attr]
    biases = [layer.bias for layer in layers]  # type: ignore[union-attr]
    bias = None
    if any(b is not None for b in biases):
        bias = torch.cat(
            [
                b.detach() if b is not None else torch.zeros(layer.out_features)  # type: ignore[union-attr]
                for b, layer in zip(biases, layers, strict=True)
            ]
        )
    fused = make_layer(weight, bias)
    outputs = _FusedOutputs(fused, len(names))
    start = 0
    for name, layer in zip(names, layers, strict=True):
        end = start + layer.out_features  # type: ignore[union-attr]
        setattr(parent, name, FusedPart(outputs, start, end))
        start = end
    return fused


def fused_copy(
    model: PreTrainedModel,
    make_layer: LayerFactory,
    table_dtype: torch.dtype,
    output_layer: LayerFactory | None = None,
) -> PreTrainedModel:
    """A copy of `model` on `make_layer`'s layers (fused as the module docstring says; the output
    layer on `output_layer`'s where given), its input embedding a `table_dtype` matrix, every
    other parameter and buffer cloned."""
    from models.engine.packed_linear import copy_memo

    converted = copy.deepcopy(model, copy_memo(model))
    embedding = converted.get_input_embeddings()
    output = converted.get_output_embeddings()
    for parent in list(converted.modules()):
        for key, names in FUSED.items():
            fused = _fuse(parent, names, make_layer)
            if fused is not None:
                object.__setattr__(parent, f"botloom_{key}", fused)  # not a submodule
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                make = output_layer if child is output and output_layer else make_layer
                setattr(parent, name, make(child.weight.detach(), child.bias))
            elif child is embedding and type(child) is nn.Embedding:
                setattr(parent, name, _input_embedding(converted, child, table_dtype))
    return converted


def _input_embedding(
    model: PreTrainedModel, embedding: nn.Embedding, dtype: torch.dtype
) -> nn.Module:
    """The input embedding mapped from the model's checkpoint (file_embedding.py), else a
    `dtype` copy of it."""
    mapped = file_embedding(model.name_or_path, embedding)
    if mapped is not None:
        return mapped
    return HalfEmbedding(embedding.weight.detach().to(dtype).contiguous(), embedding.padding_idx)

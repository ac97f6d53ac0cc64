"""Bf16Linear: bfloat16 linear layers for CPUs with native bfloat16 (AMX-BF16 / AVX512-BF16).

On such a CPU oneDNN multiplies bfloat16 on the matrix units, with float32 accumulation, from a
weight laid out once for it (`torch.ops.mkldnn._reorder_linear_weight`, as in packed_linear.py).
A decode step then reads half of float32's bytes and, at 16 rows, runs several times faster than
torch's int8 weight-only kernel (whose products at 16 rows are not vectorised as well), while the
weights keep 8 bits of mantissa against int8's per-channel steps (bench/agreement.py measures the
replies against float32's). Activations stay float32 between layers: each product rounds its
input to bfloat16 and returns float32, the bias added in float32.

q/k/v and gate/up are fused into one packed weight each (`botloom_qkv`, `botloom_gate_up` on
their parent, what the compact decode step of models/engine/compact.py uses). A packed weight has
no row views, so transformers' own forward (prefill) reaches the fused product through
`FusedPart`s: the first part called computes the fused product of its input, the others called
with the same input tensor take their columns of it. The input embedding becomes bfloat16 (a
tied output layer: a packed copy of that matrix). `bf16_copy` gives the batcher its own copy of
the model, the caller's model left unchanged.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

FUSED = {"qkv": ("q_proj", "k_proj", "v_proj"), "gate_up": ("gate_proj", "up_proj")}


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX tiles or AVX512-BF16) and oneDNN may."""
    cpu = torch.cpu
    supported = (
        getattr(cpu, "_is_amx_tile_supported", lambda: False)()
        or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
    )
    return bool(
        supported
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


class Bf16Linear(nn.Module):
    """`nn.Linear` on a oneDNN-packed bfloat16 weight [out, in]; float32 in and out; inference
    only, CPU only. `batch_size`: the rows the packing is tuned for."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, batch_size: int) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        with torch.no_grad():
            packed = weight.detach().to(torch.bfloat16).contiguous()
            self.packed = torch.ops.mkldnn._reorder_linear_weight(packed, batch_size)
        self.bias = None if bias is None else bias.detach().float().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous()
        out = torch.ops.mkldnn._linear_pointwise(flat, self.packed, None, "none", [], "").float()
        if self.bias is not None:
            out += self.bias
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bf16 packed"


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

    def __init__(self, layer: Bf16Linear, parts: int) -> None:
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


class Bf16Embedding(nn.Module):
    """An input embedding on a bfloat16 matrix (shared with the tied output layer), float32 out."""

    def __init__(self, weight: torch.Tensor, padding_idx: int | None) -> None:
        super().__init__()
        self.weight = weight
        self.padding_idx = padding_idx
        self.num_embeddings, self.embedding_dim = weight.shape

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight).float()


def can_use_bf16(model: PreTrainedModel) -> bool:
    """True where Bf16Linear applies: a float32 model on a CPU with native bfloat16."""
    return model.device.type == "cpu" and model.dtype == torch.float32 and native_bf16()


def _fuse(parent: nn.Module, names: tuple[str, ...], batch_size: int) -> Bf16Linear | None:
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
    fused = Bf16Linear(weight, bias, batch_size)
    outputs = _FusedOutputs(fused, len(names))
    start = 0
    for name, layer in zip(names, layers, strict=True):
        end = start + layer.out_features  # type: ignore[union-attr]
        setattr(parent, name, FusedPart(outputs, start, end))
        start = end
    return fused


def agrees(batch_size: int) -> bool:
    """Whether Bf16Linear matches F.linear on the bfloat16-rounded weight here (a broken oneDNN
    build, or one without bfloat16, fails)."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(48, 64, generator=generator)
    bias = torch.randn(48, generator=generator)
    layer = Bf16Linear(weight, bias, batch_size)
    rounded = weight.bfloat16().float()
    for rows in (1, 3, 40):
        x = torch.randn(rows, 64, generator=generator)
        with torch.no_grad():
            got, expected = layer(x), F.linear(x.bfloat16().float(), rounded, bias)
        if not torch.allclose(got, expected, rtol=1e-2, atol=1e-2 * float(expected.abs().mean())):
            return False
    return True


def bf16_copy(model: PreTrainedModel, batch_size: int) -> PreTrainedModel | None:
    """A copy of `model` whose `nn.Linear` layers are Bf16Linear (q/k/v and gate/up fused, kept
    as `botloom_qkv` / `botloom_gate_up` on their parent), its input embedding bfloat16 (shared
    with a tied output layer), every other parameter and buffer cloned; None where bfloat16 does
    not apply or fails its check."""
    from models.engine.packed_linear import copy_memo

    if not can_use_bf16(model):
        return None
    try:
        if not agrees(batch_size):
            return None
        converted = copy.deepcopy(model, copy_memo(model))
        embedding = converted.get_input_embeddings()
        tied = embedding.weight
        shared = tied.detach().to(torch.bfloat16).contiguous()
        for parent in list(converted.modules()):
            for key, names in FUSED.items():
                fused = _fuse(parent, names, batch_size)
                if fused is not None:
                    object.__setattr__(parent, f"botloom_{key}", fused)  # not a submodule
            for name, child in list(parent.named_children()):
                if type(child) is nn.Linear:
                    layer = Bf16Linear(child.weight, child.bias, batch_size)
                    if child.weight is tied:  # tied: one bfloat16 matrix for both
                        layer.packed = torch.ops.mkldnn._reorder_linear_weight(shared, batch_size)
                    setattr(parent, name, layer)
                elif child is embedding and type(child) is nn.Embedding:
                    setattr(parent, name, Bf16Embedding(shared, child.padding_idx))
        return converted
    except Exception:  # an op missing from this PyTorch build: serve float32
        logger.warning("bfloat16 weights are unavailable; the engine runs float32", exc_info=True)
        return None

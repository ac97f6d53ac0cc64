"""Int8Linear: weight-only int8 linear layers for the CPU backend, on torch's own kernels.

A decode step reads every weight once per step, and on a CPU with few cores a float32 step is
bound by those reads. Int8 weights with one float32 scale per output channel read a quarter of
the bytes. Products of a few rows (decode: one row per reply) go to `torch._weight_int8pack_mm`,
fed bfloat16 activations: its float32 and float16 paths are not vectorised on AVX2, its bfloat16
one is, and is faster than float32's product (see bench/results/design-measurements.md). Its
result is bfloat16, rounded once; the
scales are applied in float32 afterwards. Larger products (prefill) dequantise the weight into a
float32 scratch buffer reused by every layer and call `F.linear` (oneDNN/MKL), which beats the
int8 kernel from about 32 rows on.

The embedded default's weights come from a 4-bit GGUF file, so 8 bits per weight keep what it has
(bench/agreement.py measures the replies against float32's). `quantized_copy` gives the batcher
its own copy of the model, the caller's model left unchanged (as packed_linear.packed_copy does).
"""

from __future__ import annotations

import copy
import logging
import threading

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

SMALL_ROWS = 32  # up to this many rows go to the int8 kernel, more to dequantise + F.linear
DENSE_ROWS = 0  # a layer that keeps a float32 weight (a tied output layer) uses it above this


class _Scratch(threading.local):
    """A float32 buffer per thread, grown to the largest weight dequantised so far."""

    buffer: torch.Tensor | None = None

    def take(self, numel: int) -> torch.Tensor:
        if self.buffer is None or self.buffer.numel() < numel:
            with torch.inference_mode(False):  # a normal tensor: writable in and out of it
                self.buffer = torch.empty(numel, dtype=torch.float32)
        return self.buffer[:numel]


_SCRATCH = _Scratch()


class Int8Linear(nn.Module):
    """`nn.Linear` with an int8 weight [out, in] and float32 per-output-channel `scales`
    (weight ~ int8 x scale); float32 in and out; inference only, CPU only."""

    def __init__(
        self,
        weight: torch.Tensor,
        scales: torch.Tensor,
        bias: torch.Tensor | None,
        dense: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        # A float32 weight the model keeps anyway (the input embedding an output layer is tied
        # to): products of more than DENSE_ROWS rows use it (faster there, and exact).
        self.dense = dense
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("scales", scales, persistent=False)
        self.register_buffer("bias", bias, persistent=False)
        self.register_buffer(
            "_ones", torch.ones(self.out_features, dtype=torch.bfloat16), persistent=False
        )

    @classmethod
    def quantize(cls, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Int8Linear:
        """Symmetric per-output-channel int8 of a float weight [out, in]."""
        weight = weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        quantized = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
        return cls(quantized, scales, None if bias is None else bias.detach().float().clone())

    def rows(self, start: int, end: int) -> Int8Linear:
        """A layer computing output channels [start, end) of this one, sharing its weights."""
        bias = None if self.bias is None else self.bias[start:end]
        return Int8Linear(self.weight[start:end], self.scales[start:end], bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, self.in_features)
        if self.dense is not None and flat.shape[0] > DENSE_ROWS:
            out = F.linear(flat.float(), self.dense, self.bias)
        elif flat.shape[0] <= SMALL_ROWS:
            out = torch._weight_int8pack_mm(flat.to(torch.bfloat16), self.weight, self._ones)
            out = torch.mul(out, self.scales)  # float32
            if self.bias is not None:
                out += self.bias
        else:
            weight = _SCRATCH.take(self.weight.numel()).view(self.weight.shape)
            weight.copy_(self.weight)
            weight.mul_(self.scales[:, None])
            out = F.linear(flat.float(), weight, self.bias)
        return out.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def can_quantize(model: PreTrainedModel) -> bool:
    """True where Int8Linear applies: a float32 model on the CPU with torch's int8 kernel."""
    return (
        model.device.type == "cpu"
        and model.dtype == torch.float32
        and hasattr(torch, "_weight_int8pack_mm")
    )


def fuse_linears(parent: nn.Module, names: tuple[str, ...]) -> Int8Linear | None:
    """Quantise `parent`'s linear layers `names` (same input size) as one Int8Linear and replace
    each by a row view of it; returns the fused layer (None if any is not an nn.Linear)."""
    layers = [getattr(parent, name, None) for name in names]
    if not all(type(layer) is nn.Linear for layer in layers):
        return None
    weights = torch.cat([layer.weight.detach() for layer in layers])  # type: ignore[union-attr]
    biases = [layer.bias for layer in layers]  # type: ignore[union-attr]
    if all(b is None for b in biases):
        bias = None
    else:
        bias = torch.cat(
            [
                b.detach() if b is not None else torch.zeros(layer.out_features)  # type: ignore[union-attr]
                for b, layer in zip(biases, layers, strict=True)
            ]
        )
    fused = Int8Linear.quantize(weights, bias)
    start = 0
    for name, layer in zip(names, layers, strict=True):
        end = start + layer.out_features  # type: ignore[union-attr]
        setattr(parent, name, fused.rows(start, end))
        start = end
    return fused


def agrees() -> bool:
    """Whether Int8Linear matches F.linear on its dequantised weight here (both paths)."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(48, 64, generator=generator)
    layer = Int8Linear.quantize(weight)
    dequantised = layer.weight.float() * layer.scales[:, None]
    for rows in (3, SMALL_ROWS + 5):
        x = torch.randn(rows, 64, generator=generator)
        with torch.no_grad():
            got, expected = layer(x), F.linear(x, dequantised)
        if not torch.allclose(got, expected, rtol=2e-2, atol=2e-2 * float(expected.abs().mean())):
            return False
    return True


FUSED = {"qkv": ("q_proj", "k_proj", "v_proj"), "gate_up": ("gate_proj", "up_proj")}


def quantized_copy(model: PreTrainedModel) -> PreTrainedModel | None:
    """A copy of `model` whose `nn.Linear` layers are Int8Linear (q/k/v and gate/up fused into
    one weight each, kept as `botloom_qkv` / `botloom_gate_up` on their parent), every other
    parameter and buffer cloned; None where int8 does not apply or fails its check."""
    from models.engine.packed_linear import copy_memo

    if not can_quantize(model) or not agrees():
        return None
    try:
        quantized = copy.deepcopy(model, copy_memo(model))
        embedding = quantized.get_input_embeddings().weight
        for parent in list(quantized.modules()):
            for key, names in FUSED.items():
                fused = fuse_linears(parent, names)
                if fused is not None:
                    object.__setattr__(parent, f"botloom_{key}", fused)  # not a submodule
            for name, child in list(parent.named_children()):
                if type(child) is nn.Linear:
                    layer = Int8Linear.quantize(child.weight, child.bias)
                    if child.weight is embedding:  # tied: keep using the float32 weight too
                        layer.dense = embedding.detach()  # shared, not copied
                    setattr(parent, name, layer)
        return quantized
    except Exception:  # an op missing from this PyTorch build: serve float32
        logger.warning("int8 weights are unavailable; the engine runs float32", exc_info=True)
        return None

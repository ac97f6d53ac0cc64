"""PackedLinear: the CPU backend's linear layers, with weights laid out ahead of time by oneDNN.

A decode step multiplies a few rows (one per reply) by every weight matrix. PyTorch's float32 CPU
`linear` goes to MKL, which re-packs the weight for each call when it has several rows, so a step
of many rows cost several times a step of one. oneDNN's linear on a weight packed once
(`torch.ops.mkldnn._reorder_linear_weight`, the layout PyTorch's own compiler uses when it freezes
CPU models) does many rows markedly faster, and prefill's larger products too (see
bench/results/design-measurements.md).
Results are float32 as before, summed in another order (differences of ~1e-6 relative).

`packed_copy` gives the batcher its own copy of the model: linear layers packed, every other
parameter and buffer cloned, nothing shared, so a caller that drops its model frees all of it
(load_engine_model; a caller that keeps it, as bench/engine.py does, holds both). The caller's
model is left unchanged (serial `generate` on it computes exactly what it did).
"""

from __future__ import annotations

import copy
import itertools
import logging

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

logger = logging.getLogger(__name__)


class PackedLinear(nn.Module):
    """`nn.Linear` (float32, CPU) with its weight pre-packed for oneDNN; inference only."""

    def __init__(self, linear: nn.Linear, batch_size: int) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        with torch.no_grad():
            self.packed = torch.ops.mkldnn._reorder_linear_weight(
                linear.weight.detach(), batch_size
            )
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(
            x.contiguous(), self.packed, self.bias, "none", [], ""
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed"


def can_pack(model: PreTrainedModel) -> bool:
    """True where packing applies: a float32 model on the CPU, a PyTorch built with oneDNN."""
    return (
        model.device.type == "cpu"
        and model.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def packed_copy(model: PreTrainedModel, batch_size: int) -> PreTrainedModel | None:
    """A copy of `model` whose `nn.Linear` layers are PackedLinear (`batch_size`: the rows the
    packing is tuned for), sharing every other parameter and buffer with `model`; None where
    packing does not apply or fails its check (a packed layer must match `F.linear`)."""
    if not can_pack(model):
        return None
    try:
        packed = copy.deepcopy(model, copy_memo(model))
        replaced = 0
        for parent in list(packed.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is nn.Linear:
                    setattr(parent, name, PackedLinear(child, batch_size))
                    replaced += 1
        if not replaced or not _agrees(batch_size):
            return None
        return packed
    except Exception:  # an op missing from this PyTorch build: serve unpacked
        logger.warning(
            "oneDNN weight packing is unavailable; the engine runs unpacked", exc_info=True
        )
        return None


def copy_memo(model: nn.Module) -> dict[int, torch.Tensor]:
    """deepcopy's memo for `packed_copy`: tensors that only linear layers use stay shared (those
    layers are replaced); the others (embeddings, norms, a tied output layer's weight) are
    cloned. Loaded weights are often views of one buffer, which a single view keeps alive whole:
    sharing the embedding would keep all of the caller's weights in memory after it drops its
    model."""
    elsewhere = {
        id(tensor)
        for module in model.modules()
        if type(module) is not nn.Linear
        for tensor in itertools.chain(
            module.parameters(recurse=False), module.buffers(recurse=False)
        )
    }
    memo: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            if id(tensor) not in elsewhere:
                memo[id(tensor)] = tensor
            elif isinstance(tensor, nn.Parameter):
                memo[id(tensor)] = nn.Parameter(tensor.detach().clone(), tensor.requires_grad)
            else:
                memo[id(tensor)] = tensor.clone()
    return memo


def _agrees(batch_size: int) -> bool:
    """Whether packed and plain linear agree here (guards against a broken oneDNN build)."""
    generator = torch.Generator().manual_seed(0)
    linear = nn.Linear(64, 48)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(48, 64, generator=generator))
        x = torch.randn(3, 5, 64, generator=generator)
        expected = F.linear(x, linear.weight, linear.bias)
        got = PackedLinear(linear, batch_size)(x)
    return bool(torch.allclose(got, expected, rtol=1e-4, atol=1e-4))

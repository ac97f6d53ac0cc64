"""Bf16Linear: bfloat16 linear layers for CPUs with native bfloat16 (AMX-BF16 / AVX512-BF16).

On such a CPU oneDNN multiplies bfloat16 on the matrix units, with float32 accumulation, from a
weight laid out once for it (`torch.ops.mkldnn._reorder_linear_weight`, as in packed_linear.py).
A decode step then reads half of float32's bytes and, at 16 rows, runs several times faster than
torch's int8 weight-only kernel (whose products at 16 rows are not vectorised as well), while the
weights keep 8 bits of mantissa against int8's per-channel steps (bench/agreement.py measures the
replies against float32's). Activations stay float32 between layers, but each product rounds
its input and its output to bfloat16 (oneDNN returns the input's type), the bias added in float32:
that costs greedy agreement with float32, so fp16_linear.py, float32 in and out, is the default
where it runs. `bf16_copy` gives the batcher its own copy of the model
(models/engine/fused.py), the caller's model left unchanged.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from models.engine.fused import fused_copy

logger = logging.getLogger(__name__)


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


def can_use_bf16(model: PreTrainedModel) -> bool:
    """True where Bf16Linear applies: a float32 model on a CPU with native bfloat16."""
    return model.device.type == "cpu" and model.dtype == torch.float32 and native_bf16()


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
    """A copy of `model` on Bf16Linear layers (models/engine/fused.py: q/k/v and gate/up fused),
    its input embedding bfloat16; None where bfloat16 does not apply or fails its check."""
    if not can_use_bf16(model):
        return None
    try:
        if not agrees(batch_size):
            return None
        return fused_copy(
            model, lambda weight, bias: Bf16Linear(weight, bias, batch_size), torch.bfloat16
        )
    except Exception:  # an op missing from this PyTorch build: serve float32
        logger.warning("bfloat16 weights are unavailable; the engine runs float32", exc_info=True)
        return None

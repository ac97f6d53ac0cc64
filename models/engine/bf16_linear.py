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

import functools
import logging

import torch
from transformers import PreTrainedModel

from models.engine.fused import HalfLinear, agrees, fused_copy

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


class Bf16Linear(HalfLinear):
    """`nn.Linear` on a oneDNN-packed bfloat16 weight [out, in] (fused.HalfLinear).
    `batch_size`: the rows the packing is tuned for."""

    kind = "bf16 packed"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, batch_size: int) -> None:
        super().__init__(weight, bias)
        with torch.no_grad():
            packed = weight.detach().to(torch.bfloat16).contiguous()
            self.packed = torch.ops.mkldnn._reorder_linear_weight(packed, batch_size)

    def product(self, flat: torch.Tensor) -> torch.Tensor:
        low = flat.to(torch.bfloat16).contiguous()
        return torch.ops.mkldnn._linear_pointwise(low, self.packed, None, "none", [], "").float()


def can_use_bf16(model: PreTrainedModel) -> bool:
    """True where Bf16Linear applies: a float32 model on a CPU with native bfloat16."""
    return model.device.type == "cpu" and model.dtype == torch.float32 and native_bf16()


def bf16_copy(model: PreTrainedModel, batch_size: int) -> PreTrainedModel | None:
    """A copy of `model` on Bf16Linear layers (models/engine/fused.py: q/k/v and gate/up fused),
    its input embedding bfloat16; None where bfloat16 does not apply or fails its check."""
    if not can_use_bf16(model):
        return None
    make_layer = functools.partial(Bf16Linear, batch_size=batch_size)
    try:
        if not agrees(make_layer, _rounded, round_inputs=True, tolerance=1e-2):
            return None
        return fused_copy(model, make_layer, torch.bfloat16)
    except Exception:  # an op missing from this PyTorch build: serve float32
        logger.warning("bfloat16 weights are unavailable; the engine runs float32", exc_info=True)
        return None


def _rounded(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.bfloat16().float()

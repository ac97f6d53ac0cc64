"""Int4Linear: weight-only 4-bit linear layers for the CPU, on torch's own int4 CPU kernel.

A decode step of one reply reads every weight once, so its time follows the bytes: float16 reads
2 per weight, this layout about 0.6 (4-bit values, a bfloat16 scale and zero point per group of
`group_size` inputs along a row). The weight is quantised per group (scale = (max - min) / 15, the
zero point at the group's middle, q = round((w - min) / scale) in 0..15: the "tinygemm" format,
w = (q - 8) x scale + zero), packed once by `torch.ops.aten._convert_weight_to_int4pack_for_cpu`
and multiplied by `torch.ops.aten._weight_int4pack_mm_for_cpu`: activations and result bfloat16
(its float32 path is scalar, dozens of times slower; so each product rounds its input and output
to bfloat16, as bf16_linear.py does). Those two ops are torch's int4 CPU kernels, the ones
torchao's `Int4OpaqueTensor` (torchao 0.18, `torchao.prototype`) calls; through torchao's tensor
subclass every product cost 15-20 us more and a decode step at one row 1.16x as long
(bench/int4_dispatch.py, docs/cpu-path.md). They have no public Python wrapper, so `_agrees`
checks the kernel against float32 at load: where it is missing or wrong, `auto` serves float16
and an explicit `int4` the model as loaded. The kernel takes a multiple of 16 outputs: a layer
with others is padded with zero rows, cut off again after each product.

A 4-bit checkpoint is kept as it is. A Q4_1 GGUF block (32 weights, w = d x q + m) is such a
group: ggml's Q4_1 quantiser sets m to the block's minimum and d to (max - min) / 15, so every
block holds q = 0 and q = 15, and the per-group choice above on the checkpoint's exact values
gives back the block's own q, scale d and zero m + 8d; scale and zero are then stored as bfloat16
(the only rounding: tests/models/test_int4_linear.py checks a layer of the embedded default
against gguf's own dequantisation). `on_grid` says whether a weight is such a checkpoint's; other
weights are quantised at load.

The output layer is not 4-bit: the embedded default's (tied to the input embedding) is Q8_0 in
its GGUF, and 4 bits lose it (logits 9 % off, greedy replies of the 128 agreement prompts 0/128
identical to float32's). It is 8-bit instead, weights and activations, on oneDNN
(models/engine/int8_output.py: a quarter of float16's bytes, and at 16 rows a third of FBGEMM
float16's time), or FBGEMM's float16 (Fp16Linear) where that is unavailable. `int4_copy` gives the
batcher its own copy (models/engine/fused.py: q/k/v and gate/up fused), the caller's model left
unchanged.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn
from transformers import PreTrainedModel

from models.engine.fp16_linear import Fp16Linear, can_use_fp16
from models.engine.fused import HalfLinear, LayerFactory, agrees, fused_copy
from models.engine.int8_output import Int8OutputLinear, int8_output_available, outlier_inputs

logger = logging.getLogger(__name__)

GROUP_SIZES = (32, 64, 128)  # what the layout supports
LEVELS = 15  # 4 bits: q in 0..15
OUTPUT_MULTIPLE = 16  # _convert_weight_to_int4pack_for_cpu packs outputs in 16s
MIN_SCALE = 1e-6  # a group of equal weights (torchao's floor, kept)


class Int4Linear(HalfLinear):
    """`nn.Linear` on a weight [out, in] packed for torch's int4 CPU kernel (fused.HalfLinear),
    grouped along the inputs by `group_size`; float32 in and out, bfloat16 through the kernel.
    `packed` is the kernel's 4-bit weight, `scale_and_zero` [in / group_size, out, 2] bfloat16."""

    kind = "int4"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, group_size: int) -> None:
        super().__init__(weight, bias)
        self.group_size = group_size
        with torch.no_grad():
            weight = weight.detach().float()
            if self.out_features % OUTPUT_MULTIPLE:  # the kernel's need: zero rows, cut off later
                padding = OUTPUT_MULTIPLE - self.out_features % OUTPUT_MULTIPLE
                weight = torch.cat((weight, weight.new_zeros(padding, self.in_features)))
            q, scale, zero = quantise(weight, group_size)
            self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
            self.scale_and_zero = torch.stack((scale, zero), dim=-1).transpose(0, 1).contiguous()

    def product(self, flat: torch.Tensor) -> torch.Tensor:
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(
            flat.to(torch.bfloat16).contiguous(), self.packed, self.group_size, self.scale_and_zero
        )
        return out[:, : self.out_features].float()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, group_size={self.group_size}"


def quantise(
    weight: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q [out, in] int32 in 0..15, scale and zero [out, in / group_size] bfloat16) of a float32
    `weight`, per group of `group_size` inputs: w ~ (q - 8) x scale + zero."""
    rows = weight.shape[0]
    groups = weight.reshape(rows, -1, group_size)
    low = groups.amin(dim=-1)
    scale = ((groups.amax(dim=-1) - low) / LEVELS).clamp_min(MIN_SCALE)
    q = ((groups - low[..., None]) / scale[..., None]).round().clamp_(0, LEVELS)
    zero = low + scale * (LEVELS + 1) / 2
    return q.reshape(weight.shape).to(torch.int32), scale.bfloat16(), zero.bfloat16()


def int4_available() -> bool:
    """Whether this torch build has the int4 CPU kernel."""
    ops = torch.ops.aten
    return hasattr(ops, "_weight_int4pack_mm_for_cpu") and hasattr(
        ops, "_convert_weight_to_int4pack_for_cpu"
    )


def on_grid(weight: torch.Tensor, group_size: int = 32) -> bool:
    """Whether `weight` [out, in] already holds 4-bit values: every group of `group_size` inputs
    is min + q x (max - min) / 15 with integer q (up to float32 rounding), as a Q4_1 GGUF's."""
    if weight.dim() != 2 or weight.shape[1] % group_size:
        return False
    groups = weight.detach().float().reshape(-1, group_size)
    low = groups.amin(dim=1, keepdim=True)
    step = (groups.amax(dim=1, keepdim=True) - low) / LEVELS
    q = ((groups - low) / step.clamp_min(torch.finfo(torch.float32).tiny)).round()
    error = (low + q * step - groups).abs()
    return bool((error <= 1e-4 * step + 1e-7).all())


def four_bit_checkpoint(model: PreTrainedModel) -> bool:
    """Whether the model's first linear layer holds 4-bit groups of 32 (a Q4_1 GGUF's): the
    weights "auto" runs on int4 without re-quantising anything."""
    for module in model.modules():
        if type(module) is nn.Linear and module is not model.get_output_embeddings():
            return on_grid(module.weight)
    return False


def int4_copy(
    model: PreTrainedModel, group_size: int = 32, int8_output: bool = True
) -> PreTrainedModel | None:
    """A copy of `model` on Int4Linear layers (q/k/v and gate/up fused), its output layer
    Int8OutputLinear (`int8_output`, where oneDNN's int8 linear runs) or Fp16Linear, and its
    input embedding float16 (or mapped from the checkpoint); None where the layout or FBGEMM is
    missing or fails its check."""
    if group_size not in GROUP_SIZES:
        raise ValueError(f"int4 group size must be one of {GROUP_SIZES}, not {group_size}")
    if not (int4_available() and can_use_fp16(model)):
        return None
    try:
        if not _agrees(functools.partial(Int4Linear, group_size=32)):
            return None
        make_layer = functools.partial(Int4Linear, group_size=group_size)
        output = _output_layer(model) if int8_output else Fp16Linear
        return fused_copy(model, make_layer, torch.float16, output_layer=output)
    except Exception:  # an op missing from this PyTorch build: serve another format
        logger.warning("int4 weights are unavailable here", exc_info=True)
        return None


def _output_layer(model: PreTrainedModel) -> LayerFactory:
    """Int8OutputLinear where oneDNN's int8 linear runs and the massive activations are found,
    else Fp16Linear: the int4 layers do not depend on it."""
    if not int8_output_available():
        return Fp16Linear
    try:
        return functools.partial(Int8OutputLinear, float_inputs=outlier_inputs(model))
    except Exception:  # a model whose `model.model` takes other inputs
        logger.warning("the int8 output layer is unavailable for this model", exc_info=True)
        return Fp16Linear


def _agrees(make_layer: LayerFactory) -> bool:
    """Whether Int4Linear matches F.linear here on a weight of 4-bit groups of 32 and inputs
    rounded to bfloat16 (a broken build of the kernel fails)."""
    generator = torch.Generator().manual_seed(0)
    q = torch.randint(0, LEVELS + 1, (48 * 2, 32), generator=generator).float()
    q[:, 0], q[:, 1] = 0, LEVELS  # every group spans 0..15, as a Q4_1 block does
    step = torch.rand(48 * 2, 1, generator=generator) * 0.1 + 0.01
    low = torch.randn(48 * 2, 1, generator=generator) * 0.1
    weight = (low + q * step).reshape(48, 64)
    return agrees(make_layer, _rounded, round_inputs=True, tolerance=2e-2, weight=weight)


def _rounded(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.bfloat16().float()

"""Fp16Linear: weight-only float16 linear layers for the CPU, on FBGEMM's fp16 GEMM.

`torch.ops.quantized.linear_prepack_fp16` lays a weight out once as float16 for FBGEMM;
`linear_dynamic_fp16` multiplies a float32 input by it, widening the weight to float32 in
registers (F16C), and returns float32. A decode step reads half of float32's bytes, as bfloat16
does, but nothing else is rounded: the weights keep float16's 11 bits (bfloat16: 8) and the
activations stay float32, where llama.cpp's F16 path rounds them to float16 and oneDNN's bfloat16
one rounds each product's input and output. So greedy replies agree with float32's as often as
llama.cpp F16's agree with its F32, or more (bench/agreement.py). Measured on the 2-core AVX-512
machine here, all the embedded default's products of one decode step: 8.3 ms at 1 row against
9.7 ms bfloat16 and 36 ms float32; 16.5 ms at 16 rows against 12.6 ms and 56 ms.

Memory: FBGEMM packs a weight's inputs in blocks of 512 rows, zero-filled, so the embedded
default's 576 inputs would take the room of 1024 in every layer but `down`. `packed_inputs`
splits such a layer: its first 512 inputs are packed, the last 64 are kept beside them as a
float32 matrix of float16 values, added by one `addmm_` (the same product, summed in another
order). The layers and lm_head take 293 MB instead of 437 MB; a decode step measured the same
within this machine's noise (bench/engine_step.py: 1 row 22.5 ms whole, 23.3 split; 16 rows
68.9 and 68.2, medians of 3 runs).

FBGEMM is x86-only; `fp16_available` says whether this build has it. `fp16_copy` gives the
batcher its own copy of the model (models/engine/fused.py: q/k/v and gate/up fused, the input
embedding mapped from the checkpoint file or float16), the caller's model left unchanged.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import PreTrainedModel

from models.engine.fused import HalfLinear, agrees, fused_copy

logger = logging.getLogger(__name__)

FBGEMM_BLOCK = 512  # FBGEMM packs a weight's inputs in blocks of 512 rows, zero-filled


def fp16_available() -> bool:
    """Whether this PyTorch build has FBGEMM's fp16 linear (x86 builds do)."""
    quantized = getattr(torch.ops, "quantized", None)
    return bool(
        "fbgemm" in torch.backends.quantized.supported_engines
        and hasattr(quantized, "linear_prepack_fp16")
        and hasattr(quantized, "linear_dynamic_fp16")
    )


class Fp16Linear(HalfLinear):
    """`nn.Linear` on an FBGEMM-packed float16 weight [out, in] (fused.HalfLinear). Weights
    beyond float16's range are clipped by the packing (a checkpoint in float32 whose weights
    exceed 65504 is not one this is for: `fp16_copy` checks)."""

    kind = "fp16 packed"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__(weight, bias)
        self.packed_inputs = packed_inputs(self.in_features)
        with torch.no_grad():
            weight = weight.detach().float()
            self.packed = torch.ops.quantized.linear_prepack_fp16(
                weight[:, : self.packed_inputs].contiguous(), None
            )
            rest = weight[:, self.packed_inputs :]
            # [rest, out], float32 holding float16 values: the same product as packed ones
            self.rest = rest.half().float().t().contiguous() if rest.shape[1] else None

    def product(self, flat: torch.Tensor) -> torch.Tensor:
        flat = flat.float()
        if self.rest is None:
            return torch.ops.quantized.linear_dynamic_fp16(flat.contiguous(), self.packed)
        # linear_dynamic_fp16 makes the column slice contiguous itself, in C++
        out = torch.ops.quantized.linear_dynamic_fp16(flat[:, : self.packed_inputs], self.packed)
        return out.addmm_(flat[:, self.packed_inputs :], self.rest)


def packed_inputs(in_features: int) -> int:
    """How many of a layer's inputs FBGEMM packs: all, or its whole blocks of 512 where the rest,
    kept in float32 beside them, takes less memory than the zero padding of a last block would
    (fewer than 171 inputs past a multiple of 512)."""
    rest = in_features % FBGEMM_BLOCK
    if in_features < FBGEMM_BLOCK or 4 * rest >= 2 * (FBGEMM_BLOCK - rest):
        return in_features
    return in_features - rest


def can_use_fp16(model: PreTrainedModel) -> bool:
    """True where Fp16Linear applies: a float32 model on the CPU with FBGEMM, whose weights all
    fit float16's range."""
    if model.device.type != "cpu" or model.dtype != torch.float32 or not fp16_available():
        return False
    limit = torch.finfo(torch.float16).max
    linears = (m for m in model.modules() if type(m) is nn.Linear)
    return all(float(m.weight.detach().abs().max()) <= limit for m in linears)


def fp16_copy(model: PreTrainedModel) -> PreTrainedModel | None:
    """A copy of `model` on Fp16Linear layers (q/k/v and gate/up fused), its input embedding
    float16; None where float16 does not apply or fails its check."""
    if not can_use_fp16(model):
        return None
    try:
        if not agrees(Fp16Linear, _rounded, round_inputs=False, tolerance=1e-4):
            return None
        return fused_copy(model, Fp16Linear, torch.float16)
    except Exception:  # an op missing from this PyTorch build: serve another format
        logger.warning("float16 weights are unavailable here", exc_info=True)
        return None


def _rounded(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.half().float()

"""Fp16Linear: weight-only float16 linear layers for the CPU, on FBGEMM's fp16 GEMM.

`torch.ops.quantized.linear_prepack_fp16` lays a weight out once as float16 for FBGEMM;
`linear_dynamic_fp16` multiplies a float32 input by it, widening the weight to float32 in
registers (F16C), and returns float32. A decode step reads half of float32's bytes, as bfloat16
does, but nothing else is rounded: the weights keep float16's 11 bits (bfloat16: 8) and the
activations stay float32, where llama.cpp's F16 path rounds them to float16 and oneDNN's bfloat16
one rounds each product's input and output. So greedy replies agree with float32's as often as
llama.cpp F16's agree with its F32, or more (bench/agreement.py). A decode step's products run
several times faster than float32's, close to bfloat16's on a CPU with native bfloat16 (see
bench/results/design-measurements.md).

Memory: FBGEMM packs a weight's inputs in blocks of 512 rows, zero-filled, so the embedded
default's 576 inputs take the room of 1024 in every layer but `down`. The padding is kept: no
supported API packs without it (`linear_prepack_fp16` fixes the block height), and the two ways
tried around it are gone. Keeping the last 64 inputs in float32 beside a packed 512 made a decode
step slower (twice the bytes and one more product per layer); giving the padding's pages back to
the OS after packing read and released memory by address that other threads were mapping and
unmapping meanwhile, and crashed the bot (tests/models/test_engine_threads.py). Figures in
bench/results/design-measurements.md.

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
        with torch.no_grad():
            self.packed = torch.ops.quantized.linear_prepack_fp16(
                weight.detach().float().contiguous(), None
            )

    def product(self, flat: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic_fp16(flat.float().contiguous(), self.packed)


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

"""Int8OutputLinear: the output layer (the logits) in int8 weights and int8 activations, on oneDNN.

The output layer of a small model is its largest product: the embedded default's is 49152 x 576,
tied to the input embedding and stored as Q8_0 (8-bit) in its GGUF. In float16 on FBGEMM it takes
100 MB (FBGEMM pads the 576 inputs to 1024) and is read whole on every decode step. Here the
weight is int8 with one float32 scale per output row (symmetric, 28 MB), each product's input is
quantised to 8 bits with one scale per row (dynamic, symmetric: the row is divided by its own
largest value, so every row uses the whole range and a reply's logits do not depend on the other
rows of the batch; the products are scaled back per row), and oneDNN multiplies the two in
integers (VNNI where the CPU has it), returning float32: what llama.cpp does with a Q8_0 output
layer (it rounds the activations to 8 bits per block of 32). A model's last hidden state holds a
few "massive activations", 15-25x the typical value, always in the same dimensions; rounded with
the rest they set the row's scale and leave every other input a few levels (greedy replies of the
128 agreement prompts equal to float32's fell from 89 to 42). So those dimensions, found at load
on a short random prompt (`outlier_inputs`), go through in float32 beside the int8 product, as
LLM.int8() does: 32 inputs of 576, 6 MB.

The ops are `torch.ops.onednn.qlinear_prepack` / `qlinear_pointwise`: oneDNN's int8 linear on
plain int8/uint8 tensors, the ones inductor's x86 int8 path lowers to. They have no public Python
wrapper (as the int4 ops of int4_linear.py), so `int8_output_available` checks them against
float32 at load and the caller keeps float16 where they are missing or wrong. FBGEMM's
`quantized::linear_dynamic` does the same product but takes `torch.qint8` tensors, which torch 2.13
deprecates for removal (pytorch/pytorch#184982): not used.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from models.engine.fused import HalfLinear

logger = logging.getLogger(__name__)

FLOAT_INPUTS = 32  # inputs of the largest magnitude, kept float32 beside the int8 product
ZERO = 128  # uint8 activations: q = round(127 x / max |x| of the row) + 128, in 1..255


class Int8OutputLinear(HalfLinear):
    """`nn.Linear` on an int8 weight [out, in] with per-row float32 `scales`, packed for oneDNN
    (fused.HalfLinear): float32 in, quantised to uint8 per product, float32 out."""

    kind = "int8 weights and activations (oneDNN)"

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        float_inputs: torch.Tensor | None = None,
    ) -> None:
        super().__init__(weight, bias)
        with torch.no_grad():
            weight = weight.detach().float()
            self.float_inputs = float_inputs
            self.float_weight: torch.Tensor | None = None  # [len(float_inputs), out]
            if float_inputs is not None and len(float_inputs):
                self.float_weight = weight[:, float_inputs].t().contiguous()
                weight = weight.index_fill(1, float_inputs, 0.0)
            q, self.scales = quantised_weight(weight)
            self.packed = torch.ops.onednn.qlinear_prepack(q, None)
            self.zeros = torch.zeros(self.out_features, dtype=torch.long)

    def product(self, flat: torch.Tensor) -> torch.Tensor:
        inputs, floats = flat, None
        if self.float_weight is not None:
            floats = flat.index_select(1, self.float_inputs)
            inputs = flat.index_fill(1, self.float_inputs, 0.0)
        q, scale = quantised_input(inputs)
        out = torch.ops.onednn.qlinear_pointwise(
            q, 1.0, ZERO, self.packed, self.scales, self.zeros,
            None, 1.0, 0, torch.float32, "none", [], "",
        )  # fmt: skip
        out.mul_(scale)
        return out if floats is None else out.addmm_(floats, self.float_weight)


def quantised_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 [out, in] in -127..127, float32 scale per row) of a float32 `weight`, symmetric."""
    scales = (weight.abs().amax(dim=1) / 127).clamp_min(torch.finfo(torch.float32).tiny)
    return (weight / scales[:, None]).round_().clamp_(-127, 127).to(torch.int8), scales


def quantised_input(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 like `flat`, float32 scale per row [rows, 1]) of a float32 input [rows, in], each
    row symmetric on its own: x ~ (q - 128) x scale. Per row, so a reply's logits do not depend
    on the other rows of its batch."""
    scale = (
        flat.abs().amax(dim=1, keepdim=True).div_(127).clamp_min_(torch.finfo(torch.float32).tiny)
    )
    return (flat / scale).round_().add_(ZERO).to(torch.uint8), scale  # a row of zeros: zeros


def outlier_inputs(model: PreTrainedModel, count: int = FLOAT_INPUTS) -> torch.Tensor | None:
    """The `count` dimensions of `model`'s last hidden state with the largest mean magnitude on
    a short random prompt, or None where the model has no `model.model` to ask."""
    inner = getattr(model, "model", None)
    if inner is None or count <= 0:
        return None
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, int(model.config.vocab_size), (1, 24), generator=generator)
    with torch.inference_mode():
        hidden = inner(input_ids=ids.to(model.device)).last_hidden_state[0].float()
    return hidden.abs().mean(dim=0).topk(min(count, hidden.shape[-1])).indices.sort().values


def int8_output_available() -> bool:
    """Whether oneDNN's int8 linear is in this build and gives the float32 product of the
    weights and inputs as rounded to 8 bits (a broken build of the kernel fails)."""
    ops = getattr(torch.ops, "onednn", None)
    if not (torch.backends.mkldnn.is_available() and hasattr(ops, "qlinear_pointwise")):
        return False
    try:
        generator = torch.Generator().manual_seed(0)
        weight = torch.randn(48, 64, generator=generator)
        bias = torch.randn(48, generator=generator)
        layer = Int8OutputLinear(weight, bias)
        q, scales = quantised_weight(weight)
        for rows in (1, 3, 40):
            x = torch.randn(rows, 64, generator=generator)
            qx, scale = quantised_input(x)
            with torch.no_grad():
                got = layer(x)
                expected = F.linear((qx.float() - ZERO) * scale, q.float() * scales[:, None], bias)
            scale_of = 1e-3 * float(expected.abs().mean())
            if not torch.allclose(got, expected, rtol=1e-3, atol=scale_of):
                return False
        return True
    except Exception:  # an op missing or refusing this CPU
        logger.warning("the int8 output layer is unavailable here", exc_info=True)
        return False

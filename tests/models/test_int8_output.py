"""The int8 output layer of the int4 path (models/engine/int8_output.py): close to float32 within
8-bit rounding, a quarter of float16's bytes, and a row's logits the same alone or in a batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.engine.int8_output import Int8OutputLinear, int8_output_available

pytestmark = pytest.mark.skipif(not int8_output_available(), reason="no oneDNN int8 linear")


def layer_and_rows(rows: int = 16) -> tuple[Int8OutputLinear, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(1000, 96, generator=generator) * 0.05
    bias = torch.randn(1000, generator=generator)
    # rows of very different sizes: one shared input scale would round the small ones coarsely
    x = torch.randn(rows, 96, generator=generator) * torch.logspace(-2, 1, rows)[:, None]
    return Int8OutputLinear(weight, bias), x, F.linear(x, weight, bias)


def test_products_are_float32_within_8_bit_rounding() -> None:
    layer, x, want = layer_and_rows()
    with torch.inference_mode():
        got = layer(x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    error = (got - want).abs().amax(dim=1) / (want - layer.bias).abs().amax(dim=1)
    assert float(error.max()) < 0.03  # every row, the smallest too


def test_a_rows_logits_do_not_depend_on_the_rest_of_its_batch() -> None:
    layer, x, _ = layer_and_rows()
    with torch.inference_mode():
        batch = layer(x)
        alone = torch.cat([layer(x[i : i + 1]) for i in range(len(x))])
    assert torch.equal(batch, alone)


def test_the_weight_takes_one_byte_each() -> None:
    layer, _, _ = layer_and_rows()
    assert layer.packed.dtype == torch.int8
    assert layer.packed.numel() * layer.packed.element_size() <= 1000 * 96 * 1.1


def test_inputs_of_massive_magnitude_go_through_in_float32() -> None:
    """A hidden state's few huge dimensions would set every row's scale: kept float32, the
    other inputs keep their 8 bits."""
    generator = torch.Generator().manual_seed(4)
    weight = torch.randn(500, 64, generator=generator) * 0.05
    x = torch.randn(8, 64, generator=generator)
    x[:, 5], x[:, 40] = 25.0, -18.0  # massive activations, always in the same places
    want = F.linear(x, weight)
    plain = Int8OutputLinear(weight, None)
    split = Int8OutputLinear(weight, None, float_inputs=torch.tensor([5, 40]))
    with torch.inference_mode():
        errors = [float((layer(x) - want).abs().mean()) for layer in (plain, split)]
        alone = torch.cat([split(x[i : i + 1]) for i in range(len(x))])
        # per-row scales: the same alone or in a batch, to float32 GEMM's last bits
        assert torch.allclose(split(x), alone, rtol=1e-5, atol=1e-5)
    assert errors[1] < errors[0] / 3


def test_a_row_of_zeros_gives_the_bias() -> None:
    layer, x, _ = layer_and_rows(3)
    x[1] = 0.0
    with torch.inference_mode():
        out = layer(x)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[1], layer.bias)

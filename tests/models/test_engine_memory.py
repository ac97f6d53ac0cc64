"""What the CPU engine's weights take in memory (issue 16): the input embedding mapped from the
checkpoint file instead of copied. (FBGEMM's zero padding of float16 layers is kept: issue 24.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from models.engine.file_embedding import FileEmbedding, file_embedding
from models.engine.fp16_linear import Fp16Linear, fp16_available, fp16_copy
from models.engine.fused import HalfEmbedding
from models.loading import load_pretrained
from tests.models.serial import Loaded

needs_fp16 = pytest.mark.skipif(not fp16_available(), reason="no FBGEMM in this build (not x86)")


@pytest.fixture(scope="module")
def float32(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    return load_pretrained(str(tiny_model_dir), cache_dir=tmp_path_factory.mktemp("cache"))


def mapped_rss_kb(tensor: torch.Tensor) -> int:
    """Resident kB of the mapping that holds `tensor`'s first byte (/proc/self/smaps)."""
    address, inside = tensor.data_ptr(), False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(part, 16) for part in head.split("-"))
            inside = start <= address < end
        elif inside and head == "Rss:":
            return int(line.split()[1])
    raise AssertionError("no mapping holds the tensor")


@needs_fp16
def test_the_input_embedding_is_the_checkpoints_own_matrix_mapped_from_its_file(
    float32: Loaded, tiny_model_dir: Path
) -> None:
    model = float32[0]
    converted = fp16_copy(model)
    assert converted is not None
    embedding = converted.get_input_embeddings()
    assert isinstance(embedding, FileEmbedding)
    assert embedding.path == tiny_model_dir / "model.safetensors"
    # The exact float32 values, where the float16 copy it replaces rounded them.
    original = model.get_input_embeddings().weight.detach()
    assert embedding.weight.dtype == torch.float32
    assert torch.equal(embedding.weight, original)
    ids = torch.tensor([[0, 7, 499], [3, 3, 250]])
    assert torch.equal(embedding(ids), F.embedding(ids, original))


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_looked_up_rows_are_resident_until_released(tmp_path: Path) -> None:
    table = torch.randn(4096, 64)  # 1 MiB: 256 pages
    save_file({"model.embed_tokens.weight": table}, tmp_path / "model.safetensors")
    embedding = file_embedding(tmp_path, nn.Embedding.from_pretrained(table))
    assert embedding is not None
    assert mapped_rss_kb(embedding.weight) == 0  # the check's sample rows were released
    assert torch.equal(embedding(torch.arange(4096)), table)
    assert mapped_rss_kb(embedding.weight) >= 1024
    embedding.release()
    assert mapped_rss_kb(embedding.weight) == 0
    assert torch.equal(embedding(torch.tensor([5, 4095])), table[[5, 4095]])  # read back


def test_a_file_is_used_only_where_it_holds_what_was_loaded(tmp_path: Path) -> None:
    stored = torch.randn(300, 32)
    untied_head = torch.randn(300, 32)  # same shape: told apart by its rows
    save_file(
        {"lm_head.weight": untied_head, "embed.weight": stored.bfloat16()},
        tmp_path / "model.safetensors",
    )
    loaded = nn.Embedding.from_pretrained(stored.bfloat16().float())
    embedding = file_embedding(tmp_path, loaded)
    assert embedding is not None and embedding.weight.dtype == torch.bfloat16
    ids = torch.tensor([1, 299, 150])
    assert torch.equal(embedding(ids), loaded(ids))
    assert file_embedding(tmp_path, nn.Embedding.from_pretrained(torch.randn(300, 32))) is None
    assert file_embedding(tmp_path / "missing", loaded) is None
    (tmp_path / "broken.safetensors").write_bytes(b"\xff" * 16)
    assert file_embedding(tmp_path, loaded) is not None  # a broken file is skipped, not fatal


@needs_fp16
def test_a_model_built_in_memory_keeps_a_float16_table() -> None:
    config = LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2,
    )  # fmt: skip
    converted = fp16_copy(LlamaForCausalLM(config).eval())
    assert converted is not None
    assert isinstance(converted.get_input_embeddings(), HalfEmbedding)
    assert converted.get_input_embeddings().weight.dtype == torch.float16


@needs_fp16
@pytest.mark.parametrize("inputs", [1024, 600, 64])
def test_fp16_layers_of_any_width_compute_the_float16_product(inputs: int) -> None:
    generator = torch.Generator().manual_seed(inputs)
    weight = torch.randn(96, inputs, generator=generator)
    bias = torch.randn(96, generator=generator)
    layer = Fp16Linear(weight, bias)
    x = torch.randn(2, 5, inputs, generator=generator)
    with torch.inference_mode():
        got = layer(x)
    want = F.linear(x, weight.half().float(), bias)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))

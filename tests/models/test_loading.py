from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from models.api import ModelUnavailable
from models.loading import load_pretrained, pick_device, pick_dtype


def test_pick_device_prefers_cuda_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(None).type == "cuda"


def test_pick_device_falls_back_to_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == torch.device("cpu")


def test_pick_device_honours_an_explicit_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("cuda:1") == torch.device("cuda", 1)


def test_pick_device_refuses_cuda_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelUnavailable, match="CUDA is not available"):
        pick_device("cuda")


def test_pick_dtype_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pick_dtype(torch.device("cpu")) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert pick_dtype(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert pick_dtype(torch.device("cuda")) == torch.float16


def test_pick_dtype_honours_an_explicit_choice() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert pick_dtype(cpu, "bfloat16") == torch.bfloat16
    assert pick_dtype(cpu, "float16") == torch.float16
    assert pick_dtype(cuda, "float32") == torch.float32
    with pytest.raises(ValueError, match="unknown dtype"):
        pick_dtype(cpu, "int3")


def test_load_from_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    model, tokenizer = load_pretrained(str(tiny_model_dir), cache_dir=tmp_path)
    assert isinstance(model, LlamaForCausalLM)
    assert not model.training
    assert model.device == torch.device("cpu")
    assert model.dtype == torch.float32
    assert tokenizer.chat_template


def test_load_honours_dtype(tiny_model_dir: Path, tmp_path: Path) -> None:
    model, _ = load_pretrained(
        str(tiny_model_dir), cache_dir=tmp_path, device="cpu", dtype="bfloat16"
    )
    assert model.dtype == torch.bfloat16


def test_save_and_reload_gives_identical_logits(tiny_model_dir: Path, tmp_path: Path) -> None:
    model, tokenizer = load_pretrained(str(tiny_model_dir), cache_dir=tmp_path)
    model.save_pretrained(tmp_path / "copy")
    tokenizer.save_pretrained(tmp_path / "copy")
    reloaded, retokenizer = load_pretrained(str(tmp_path / "copy"), cache_dir=tmp_path)

    ids = tokenizer("Hello, how are you today?", return_tensors="pt")["input_ids"]
    assert torch.equal(
        ids, retokenizer("Hello, how are you today?", return_tensors="pt")["input_ids"]
    )
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)


def test_a_model_without_chat_template_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    (base / "chat_template.jinja").unlink()
    with pytest.raises(ModelUnavailable, match="no chat template"):
        load_pretrained(str(base), cache_dir=tmp_path)


@pytest.mark.parametrize("spec", ["/no/such/folder", "./no-such-folder", "/no/such/model.gguf"])
def test_missing_paths_are_unavailable(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="no such"):
        load_pretrained(spec, cache_dir=tmp_path)


def test_a_folder_without_a_model_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="not a model folder"):
        load_pretrained(str(tmp_path), cache_dir=tmp_path)


def test_a_gguf_path_is_read_as_gguf(tmp_path: Path) -> None:
    # The real GGUF file is loaded in the slow test of models/embedded.py; here the error shows
    # that the file went to transformers' GGUF reader.
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a gguf file")
    with pytest.raises(ModelUnavailable, match="GGUF") as caught:
        load_pretrained(str(fake), cache_dir=tmp_path)
    assert caught.value.__cause__ is not None

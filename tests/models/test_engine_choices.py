"""The engine's choices have one home that the settings import without loading torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args, get_type_hints

import pytest

from models.engine_choices import ENGINE_WEIGHTS, ENGINES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["models.engine_choices", "bot.settings"])
def test_importing_the_choices_does_not_import_torch(module: str) -> None:
    check = (
        f"import sys, {module}; "
        "heavy = sorted({'torch', 'transformers'} & set(sys.modules)); "
        "print(','.join(heavy)); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, f"{module} imported {result.stdout.strip()} {result.stderr}"


def test_the_engine_and_the_settings_use_the_same_choices() -> None:
    from bot import settings
    from models.engine.config import EngineConfig

    assert settings.ENGINES is ENGINES and settings.ENGINE_WEIGHTS is ENGINE_WEIGHTS
    weights = get_type_hints(EngineConfig)["weights"]
    assert get_args(weights) == ENGINE_WEIGHTS
    assert ENGINES == ("auto", "batched", "serial")
    assert ENGINE_WEIGHTS == ("auto", "int4", "fp16", "bf16", "int8", "float32")

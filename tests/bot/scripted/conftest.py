from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """`botloom` run in-process in an empty folder, with only the settings the test gives."""
    for name in list(os.environ):
        if name.startswith("BOTLOOM_") or name.startswith("Microsoft"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BOTLOOM_STORAGE", "memory://")
    monkeypatch.setenv("BOTLOOM_MODEL", "fake")  # what `--model real` and `botloom chat` load
    monkeypatch.setenv("BOTLOOM_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    return tmp_path

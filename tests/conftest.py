from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.connector import FakeConnector

# Scripted conversations: the *.chat and *.transcript files under the `botloom_scripts` folders
# (pyproject.toml) are collected as tests by this plugin (bot/scripted/pytest_plugin.py).
pytest_plugins = ("bot.scripted.pytest_plugin",)


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    """A fake Bot Connector on 127.0.0.1 that records the bot's replies (tests/connector.py)."""
    fake = FakeConnector()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight ChatML model folder (tests/tiny_model.py), built once per session."""
    from tests.tiny_model import build_tiny_model  # imports torch: only for tests that need it

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_tools_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a Hermes-style chat template that takes `tools`."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-tools-model"), tools=True)

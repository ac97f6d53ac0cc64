from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from models.fake import FakeChatModel


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(storage=f"sqlite:///{tmp_path}/state.db", typing_interval_s=0.05)


@pytest.fixture
def fake_model() -> FakeChatModel:
    return FakeChatModel()


@pytest.fixture
async def bot_client(settings: Settings, fake_model: FakeChatModel) -> AsyncIterator[TestClient]:
    """A real aiohttp server on 127.0.0.1 running botloom with the fake model."""
    client = TestClient(TestServer(create_app(settings, model=fake_model), host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()

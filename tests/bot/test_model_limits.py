"""The local model as the bot and `botloom model-server` build it from settings (issue 12 item
10): every request is capped at BOTLOOM_CONTEXT_TOKENS, the model server answers a longer prompt
with 400 context_length_exceeded, and the CPU engine's settings are read and checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.model_setup import build_local_model
from bot.settings import Settings, SettingsError
from models.api import ChatMessage
from models.deferred import DeferredChatModel
from models.serving.model_server import create_model_server


async def test_the_model_server_caps_requests_at_the_configured_context_window(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {
            "BOTLOOM_MODEL": str(tiny_model_dir),
            "BOTLOOM_CACHE_DIR": str(tmp_path),
            "BOTLOOM_CONTEXT_TOKENS": "64",
            "BOTLOOM_TORCH_THREADS": "1",
        },
        env_file=None,
    )
    model = build_local_model(settings)
    assert isinstance(model, DeferredChatModel)
    loaded = await model.wait_ready()
    client = TestClient(TestServer(create_model_server(model), host="127.0.0.1"))
    await client.start_server()
    try:
        assert loaded.context_window == 64  # the model's own window is 2048
        long = [{"role": "user", "content": "word " * 200}]
        response = await client.post("/v1/chat/completions", json={"messages": long})
        error = (await response.json())["error"]
        short = [{"role": "user", "content": "hi"}]
        ok = await client.post("/v1/chat/completions", json={"messages": short, "max_tokens": 500})
        await ok.read()
        prompt = loaded.count_tokens([ChatMessage("user", "hi")])
        generated = loaded.tokens_generated  # type: ignore[attr-defined]
    finally:
        await client.close()
        loaded.close()  # type: ignore[attr-defined]
    assert response.status == 400 and error["code"] == "context_length_exceeded"
    assert ok.status == 200
    assert 0 < generated <= 64 - prompt  # max_tokens 500 was capped at the window


def test_the_cpu_engine_settings_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {"BOTLOOM_ENGINE_WEIGHTS": "float32", "BOTLOOM_PREFIX_CACHE_MB": "64",
         "BOTLOOM_TORCH_THREADS": "2"},
        env_file=None,
    )  # fmt: skip
    assert (settings.engine_weights, settings.prefix_cache_mb, settings.torch_threads) == (
        "float32",
        64,
        2,
    )
    assert Settings().engine_weights == "auto" and Settings().prefix_cache_mb == 0
    with pytest.raises(SettingsError, match="BOTLOOM_ENGINE_WEIGHTS"):
        Settings.from_env({"BOTLOOM_ENGINE_WEIGHTS": "int3"}, env_file=None)
    with pytest.raises(SettingsError, match="BOTLOOM_TORCH_THREADS"):
        Settings.from_env({"BOTLOOM_TORCH_THREADS": "-1"}, env_file=None)

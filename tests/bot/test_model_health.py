"""A bot whose remote model server is down stays ready (it apologises) but says why on /healthz
and in its log, once a minute (issue 12, item 2)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from models.fake import FakeChatModel
from models.serving.model_server import create_model_server
from tests.services import closed_port


async def model_server_state(client: TestClient, want: bool, timeout: float = 20.0) -> Any:
    """/healthz's model_server part, once its `reachable` is `want`."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get("/healthz")
        assert response.status == 200
        body = await response.json()
        state = body.get("model_server") or {}
        if state.get("reachable") is want or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


def remote_settings(tmp_path: Path, url: str) -> Settings:
    return Settings(
        storage=f"sqlite:///{tmp_path}/state.db",
        model_url=url,
        model_max_retries=0,
        model_connect_timeout_s=2.0,
        model_probe_interval_s=0.05,
    )


async def test_a_down_model_server_shows_on_healthz_and_in_the_log_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(remote_settings(tmp_path, f"http://127.0.0.1:{closed_port()}/v1"))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        body = await model_server_state(client, want=False)
        assert body["status"] == "ok"
        state = body["model_server"]
        assert state["reachable"] is False, body
        assert "connect" in state["last_error"].lower(), state
        assert (await client.get("/readyz")).status == 200  # the bot still answers (apologies)
        await asyncio.sleep(0.5)  # about ten more failed probes
        down = [
            r
            for r in caplog.records
            if r.levelno == logging.WARNING and "model server" in r.getMessage()
        ]
        assert len(down) == 1, [r.getMessage() for r in down]
        assert "127.0.0.1" in down[0].getMessage()
    finally:
        await client.close()


async def test_a_reachable_model_server_shows_its_latency(tmp_path: Path) -> None:
    server = TestClient(TestServer(create_model_server(FakeChatModel()), host="127.0.0.1"))
    await server.start_server()
    app = create_app(remote_settings(tmp_path, str(server.make_url("/v1"))))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        state = (await model_server_state(client, want=True))["model_server"]
        assert state["reachable"] is True, state
        assert state["last_error"] is None
        assert 0 <= state["latency_ms"] < 10_000
    finally:
        await client.close()
        await server.close()


async def test_a_local_model_has_no_model_server_state(tmp_path: Path) -> None:
    settings = Settings(storage=f"sqlite:///{tmp_path}/state.db")
    client = TestClient(TestServer(create_app(settings, model=FakeChatModel()), host="127.0.0.1"))
    await client.start_server()
    try:
        assert await (await client.get("/healthz")).json() == {"status": "ok"}
    finally:
        await client.close()

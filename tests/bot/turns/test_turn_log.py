"""One structured log line per turn; no message text, user names or secrets unless allowed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector

SECRET = "pa55word-never-logged"


async def run_turn(settings: Settings, connector: FakeConnector) -> None:
    client = TestClient(TestServer(create_app(settings, model=FakeChatModel()), host="127.0.0.1"))
    await client.start_server()
    try:
        activity = message("my card number is 4111", service_url=connector.url)
        activity["from"]["name"] = "Alice Example"
        await client.post("/api/messages", json=activity)
        await connector.wait_for_messages(1)
    finally:
        await client.close()


def turn_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "botloom.turn"]


async def test_one_line_per_turn_without_text_or_secrets(
    tmp_path: Path, connector: FakeConnector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(storage=f"sqlite:///{tmp_path}/s.db", app_password=SECRET)
    await run_turn(settings, connector)
    lines = turn_lines(caplog)
    assert len(lines) == 1
    line = lines[0]
    assert line["conversation"] == "conv-1" and line["outcome"] == "ok" and line["replies"] == 1
    assert isinstance(line["latency_ms"], float)
    everything = caplog.text + repr(settings)
    for private in ("4111", "Alice", SECRET):
        assert private not in everything, private


async def test_text_is_logged_only_when_allowed(
    tmp_path: Path, connector: FakeConnector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await run_turn(Settings(storage=f"sqlite:///{tmp_path}/s.db", log_messages=True), connector)
    line = turn_lines(caplog)[0]
    assert line["text"] == "my card number is 4111" and line["user"] == "Alice Example"

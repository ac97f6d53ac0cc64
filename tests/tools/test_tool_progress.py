"""While a tool runs, a streaming channel is told what it is doing: the reply's stream starts with
the informative update "Looking up order id A-10234 (lookup_order)…" (not "Thinking…"; Teams
shows it, Web Chat 4.18 shows a typing indicator) and the answer from the tool's result ends that
same stream; a channel that does not stream gets the answer alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import RUNTIME, create_app
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector
from tests.tools.support import shop_settings
from tests.tools.test_servers import wait_up


@pytest.fixture
async def client(tmp_path: Path, tiny_model_dir: Path) -> AsyncIterator[TestClient]:
    # the tiny model fills arguments, constrained to what was said
    settings = shop_settings(tmp_path, model=str(tiny_model_dir))
    app = create_app(settings, model=FakeChatModel())
    test_client = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    await wait_up(app[RUNTIME].tools.runner, "shop")
    yield test_client
    await test_client.close()


def stream_info(activity: dict[str, Any]) -> dict[str, Any] | None:
    return next((e for e in activity.get("entities") or [] if e.get("type") == "streaminfo"), None)


async def ask(client: TestClient, connector: FakeConnector, channel: str) -> dict[str, Any]:
    text = "What did I buy in order A-10234 and how much was it?"
    await client.post(
        "/api/messages", json=message(text, service_url=connector.url, channel=channel)
    )
    [final] = await connector.wait_for_messages(1, timeout=60)
    return final


@pytest.mark.parametrize("channel", ["webchat", "msteams"])
async def test_the_stream_says_what_is_looked_up_then_answers(
    client: TestClient, connector: FakeConnector, channel: str
) -> None:
    final = await ask(client, connector, channel)
    streamed = [a for a in connector.activities if stream_info(a) is not None]
    informative, last = streamed[0], streamed[-1]
    assert informative["type"] == "typing"
    assert stream_info(informative)["streamType"] == "informative"
    assert informative["text"] == "Looking up order id A-10234 (lookup_order)…"
    assert last is final and stream_info(final)["streamType"] == "final"
    # the connector answers its n-th activity with the id reply-n: the informative update's id
    # names the stream, and the final message closes that stream, not another
    opened = f"reply-{connector.activities.index(informative) + 1}"
    assert stream_info(final)["streamId"] == opened
    assert "shop/lookup_order" in final["text"]
    assert not [a for a in streamed if a.get("text") == "Thinking…"], "no second stream"


async def test_a_channel_that_does_not_stream_gets_the_answer_alone(
    client: TestClient, connector: FakeConnector
) -> None:
    final = await ask(client, connector, "emulator")
    assert "shop/lookup_order" in final["text"]
    assert not [a for a in connector.activities if stream_info(a) is not None]
    assert not [a for a in connector.activities if "Looking up" in (a.get("text") or "")]

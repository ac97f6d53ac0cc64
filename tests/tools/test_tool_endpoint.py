"""Approvals through the real endpoint: a Web Chat-shaped press (a message whose value carries
the card's data) and a Teams-shaped one (the invoke `adaptiveCard/action`, answered with the
outcome card), each run once; /healthz names a tool server that is down."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import RUNTIME, create_app
from bot.settings import Settings
from bot.tools.cards import CARD_TYPE, DATA_KEY
from dialogs.tools.api import ToolCall
from models.fake import FakeChatModel
from tests.activities import message
from tests.connector import FakeConnector
from tests.tools.support import SERVER, lines, turn
from tests.tools.test_servers import wait_up


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    config = {
        "mcpServers": {
            "test": {
                "command": sys.executable,
                "args": [str(SERVER)],
                "env": {"NOTES_FILE": str(tmp_path / "notes")},
            },
            "gone": {"command": str(tmp_path / "no-such-server")},
        }
    }
    (tmp_path / "mcp.json").write_text(json.dumps(config))
    settings = Settings(
        storage=f"sqlite:///{tmp_path}/state.db",
        mcp_config=str(tmp_path / "mcp.json"),
        tools_audit=str(tmp_path / "audit.jsonl"),
    )
    app = create_app(settings, model=FakeChatModel())
    test_client = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    await wait_up(app[RUNTIME].tools.runner, "test")
    yield test_client
    await test_client.close()


async def pending_note(client: TestClient, channel: str, service_url: str) -> str:
    runner = client.server.app[RUNTIME].tools.runner
    note = next(t for t in runner.tools() if t.name == "note")
    context = turn(user="user-1", conversation="conv-1", channel=channel)
    context.activity.service_url = service_url
    outcome = await runner.run(context, ToolCall(note, {"text": "from the card"}))
    return str(outcome.approval_id)


def teams_click(connector: FakeConnector, approval: str, decision: str) -> dict[str, Any]:
    """The invoke Teams sends for a press of the approval card's Action.Execute."""
    return message(
        None,
        service_url=connector.url,
        channel="msteams",
        type="invoke",
        name="adaptiveCard/action",
        value={
            "action": {
                "type": "Action.Execute",
                "verb": "botloom.tool.decide",
                "data": {DATA_KEY: approval, "decision": decision},
            }
        },
    )


async def test_healthz_names_the_server_that_is_down(client: TestClient) -> None:
    body = await (await client.get("/healthz")).json()
    assert body["status"] == "ok" and body["tool_servers_down"] == ["gone"]


async def test_web_chat_press_delivered_twice_runs_once(
    client: TestClient, connector: FakeConnector, tmp_path: Path
) -> None:
    approval = await pending_note(client, "emulator", connector.url)
    press = message(
        None, service_url=connector.url, value={DATA_KEY: approval, "decision": "approve"}
    )
    for _ in range(2):  # the same activity delivered again: the bot answers it once
        assert (await client.post("/api/messages", json=press)).status in (200, 201, 202)
    again = message(
        None, service_url=connector.url, value={DATA_KEY: approval, "decision": "approve"}
    )
    await client.post("/api/messages", json=again)  # a second press
    replies = await connector.wait_for_messages(2)
    texts = [r.get("text", "") for r in replies]
    assert texts[0].startswith("Done. noted: from the card")
    assert "already decided" in texts[1]
    assert lines(tmp_path / "notes") == ["from the card"]


async def test_teams_invoke_answers_with_the_outcome_card(
    client: TestClient, connector: FakeConnector, tmp_path: Path
) -> None:
    approval = await pending_note(client, "msteams", connector.url)
    invoke = teams_click(connector, approval, "reject")
    response = await client.post("/api/messages", json=invoke)
    assert response.status == 200
    body = await response.json()
    assert body["type"] == CARD_TYPE and "did not run note" in json.dumps(body["value"])
    assert lines(tmp_path / "notes") == []


async def test_a_teams_click_delivered_twice_gets_the_same_outcome_card_and_runs_once(
    client: TestClient, connector: FakeConnector, tmp_path: Path
) -> None:
    """Teams redelivers an invoke whose answer it did not get: the redelivery (same activity id)
    is answered with the first delivery's outcome card, not an error, and the tool ran once."""
    approval = await pending_note(client, "msteams", connector.url)
    invoke = teams_click(connector, approval, "approve")
    first, second = [await client.post("/api/messages", json=invoke) for _ in range(2)]
    bodies = [await first.json(), await second.json()]
    assert first.status == second.status == 200
    assert bodies[0] == bodies[1] and bodies[0]["type"] == CARD_TYPE
    assert "noted: from the card" in json.dumps(bodies[0]["value"])
    assert lines(tmp_path / "notes") == ["from the card"]

"""Helpers for the tool tests: the test server's config, a runner over it, a TurnContext, and
the settings of a bot with the demo shop server (examples/mcp/servers.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from botbuilder.core import MemoryStorage, Storage, TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationAccount

from bot.settings import Settings
from bot.tools.approvals import PendingApprovals
from bot.tools.audit import AuditLog
from bot.tools.config import ServerConfig, parse_server
from bot.tools.runner import McpToolRunner
from bot.tools.servers import McpServers

SERVER = Path(__file__).with_name("mcp_server.py")
ROOT = Path(__file__).resolve().parents[2]


def stdio_config(notes: Path, name: str = "test", **extra: Any) -> ServerConfig:
    return parse_server(
        name,
        {
            "command": sys.executable,
            "args": [str(SERVER)],
            "env": {"NOTES_FILE": str(notes)},
            **extra,
        },
    )


def make_runner(
    configs: list[ServerConfig],
    audit: Path,
    storage: Storage | None = None,
    expiry_s: float = 600.0,
) -> McpToolRunner:
    servers = McpServers(configs, retry_s=0.2, ping_s=0.5)
    approvals = PendingApprovals(storage or MemoryStorage(), expiry_s=expiry_s)
    return McpToolRunner(servers, approvals, AuditLog(audit))


def turn(
    text: str = "",
    *,
    user: str = "u1",
    conversation: str = "c1",
    channel: str = "emulator",
    value: Any = None,
    name: str | None = None,
    kind: str = ActivityTypes.message,
) -> TurnContext:
    activity = Activity(
        type=kind,
        name=name,
        text=text,
        value=value,
        channel_id=channel,
        conversation=ConversationAccount(id=conversation),
        from_property=ChannelAccount(id=user),
        recipient=ChannelAccount(id="bot"),
        service_url="http://127.0.0.1:1",
    )
    return TurnContext(TestAdapter(), activity)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def shop_settings(tmp_path: Path, **model: str) -> Settings:
    """A bot with the demo shop server over stdio, its state and audit in `tmp_path`; `model`:
    the model settings (a folder that fills arguments, or a served model)."""
    config = {
        "mcpServers": {
            "shop": {
                "command": sys.executable,
                "args": [str(ROOT / "examples/mcp/servers.py"), "shop"],
            }
        }
    }
    (tmp_path / "mcp.json").write_text(json.dumps(config))
    return Settings(
        storage=f"sqlite:///{tmp_path}/state.db",
        mcp_config=str(tmp_path / "mcp.json"),
        tools_audit=str(tmp_path / "audit.jsonl"),
        **model,
    )

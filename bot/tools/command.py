"""`botloom tools list` (servers, their tools and each tool's approval rule) and `botloom tools
audit --since 2h` (the audit log's lines since then)."""

from __future__ import annotations

import argparse
import json
import sys

from bot.settings import Settings
from bot.tools.audit import AuditLog, parse_since


def add_tools_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tools = commands.add_parser("tools", help="the MCP servers' tools (BOTLOOM_MCP_CONFIG)")
    verbs = tools.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="servers, tools and each tool's approval rule")
    listing.add_argument("--wait", type=float, default=20.0, help="seconds to wait for servers")
    audit = verbs.add_parser("audit", help="the tool calls of the audit log")
    audit.add_argument("--since", default=None, help='"2h", "30m", "1d" or an ISO time')


async def list_tools(settings: Settings, wait_s: float) -> int:
    if not settings.mcp_config:
        print("botloom: no BOTLOOM_MCP_CONFIG is set", file=sys.stderr)
        return 2
    from bot.tools.config import McpConfigError, load_config  # the MCP SDK: only when used
    from bot.tools.rules import spec_of
    from bot.tools.servers import McpServers

    try:
        servers = McpServers(load_config(settings.mcp_config))
    except McpConfigError as error:
        print(f"botloom: {error}", file=sys.stderr)
        return 2
    servers.start()
    try:
        await servers.wait_tried(wait_s)
        for name, connection in servers.connections.items():
            config = connection.config
            where = " ".join([config.command or "", *config.args]) or config.url
            state = "up" if connection.up else f"DOWN ({connection.error})"
            print(f"{name} [{config.transport}: {where}] {state}")
            for tool in connection.tools:
                spec = spec_of(config, tool)
                rule = "runs at once" if spec.rule == "auto" else "needs approval"
                kind = "read-only" if spec.read_only else "changes things"
                print(f"  {tool.name:28s} {kind:15s} {rule:15s} {spec.description}")
    finally:
        await servers.close()
    return 0 if not servers.down() else 1


def print_audit(settings: Settings, since: str | None) -> int:
    try:
        when = parse_since(since) if since else None
    except ValueError:
        print(f"botloom: --since {since!r}: use 2h, 30m, 1d or an ISO time", file=sys.stderr)
        return 2
    for entry in AuditLog(settings.tools_audit or None).read(when):
        print(json.dumps(entry, ensure_ascii=False))
    return 0

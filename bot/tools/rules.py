"""Which calls need the user's approval: a tool whose MCP annotations say `readOnlyHint: true`
runs at once, any other only after the user approves; the config's "approval" ("always" |
"never", per tool or server) overrides both."""

from __future__ import annotations

from mcp.types import Tool

from bot.tools.config import ServerConfig
from dialogs.tools.api import Rule, ToolSpec


def is_read_only(tool: Tool) -> bool:
    return bool(tool.annotations and tool.annotations.read_only_hint)


def rule_for(config: ServerConfig, tool: Tool) -> Rule:
    override = config.approval_for(tool.name)
    if override == "never":
        return "auto"
    if override == "always":
        return "ask"
    return "auto" if is_read_only(tool) else "ask"


def spec_of(config: ServerConfig, tool: Tool) -> ToolSpec:
    return ToolSpec(
        server=config.name,
        name=tool.name,
        description=tool.description or tool.name,
        input_schema=dict(tool.input_schema or {}),
        read_only=is_read_only(tool),
        rule=rule_for(config, tool),
    )

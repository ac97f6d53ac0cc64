"""BOTLOOM_MCP_CONFIG: the `mcpServers` file MCP hosts share.

    {"mcpServers": {
        "shop": {"command": "python", "args": ["servers.py", "shop"], "env": {"K": "v"}},
        "office": {"url": "https://tools.example.com/mcp", "headers": {"Authorization": "…"},
                   "approval": "always", "tools": {"find_colleague": {"approval": "never"}}}}}

A server has `command` (stdio: the bot starts it and restarts it when it dies) or `url`
(Streamable HTTP). botloom adds `approval` ("always" | "never"), per server or per tool, over
the rule the tool's annotations give, and `timeout_s` per call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Approval = Literal["always", "never"]
APPROVALS = ("always", "never")


class McpConfigError(ValueError):
    """The MCP config file cannot be read or is not in the mcpServers format."""


@dataclass(frozen=True)
class ServerConfig:
    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    approval: Approval | None = None
    tool_approval: dict[str, Approval] = field(default_factory=dict)
    timeout_s: float = 20.0

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    def approval_for(self, tool: str) -> Approval | None:
        """The config's override for `tool` (the tool's own, else the server's), or None."""
        return self.tool_approval.get(tool, self.approval)


def _approval(value: object, where: str) -> Approval | None:
    if value is None:
        return None
    if value not in APPROVALS:
        raise McpConfigError(f"{where}: approval must be 'always' or 'never', not {value!r}")
    return value  # type: ignore[return-value]


def _strings(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise McpConfigError(f"{where} must be an object of strings")
    return {str(k): v for k, v in value.items()}


def parse_server(name: str, raw: object) -> ServerConfig:
    """One entry of `mcpServers`. Raises McpConfigError."""
    if not isinstance(raw, dict):
        raise McpConfigError(f"mcpServers.{name} must be an object")
    command, url = raw.get("command"), raw.get("url")
    if bool(command) == bool(url):
        raise McpConfigError(f"mcpServers.{name}: give either 'command' (stdio) or 'url' (HTTP)")
    args = raw.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise McpConfigError(f"mcpServers.{name}.args must be a list of strings")
    if url and not str(url).startswith(("http://", "https://")):
        raise McpConfigError(f"mcpServers.{name}.url must be an http(s) URL")
    tools = raw.get("tools", {})
    if not isinstance(tools, dict):
        raise McpConfigError(f"mcpServers.{name}.tools must be an object")
    tool_approval: dict[str, Approval] = {}
    for tool, value in tools.items():
        where = f"mcpServers.{name}.tools.{tool}"
        if value is not None and not isinstance(value, dict):
            raise McpConfigError(f'{where} must be an object, such as {{"approval": "never"}}')
        if a := _approval((value or {}).get("approval"), where):
            tool_approval[str(tool)] = a
    cwd = raw.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise McpConfigError(f"mcpServers.{name}.cwd must be a string")
    timeout = raw.get("timeout_s", 20.0)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise McpConfigError(f"mcpServers.{name}.timeout_s must be a positive number")
    return ServerConfig(
        name=name,
        command=command or None,
        args=tuple(args),
        env=_strings(raw.get("env"), f"mcpServers.{name}.env"),
        cwd=cwd,
        url=url or None,
        headers=_strings(raw.get("headers"), f"mcpServers.{name}.headers"),
        approval=_approval(raw.get("approval"), f"mcpServers.{name}"),
        tool_approval=tool_approval,
        timeout_s=float(timeout),
    )


def parse_config(data: object) -> list[ServerConfig]:
    """The servers of a parsed mcp.json. Raises McpConfigError."""
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        raise McpConfigError("the MCP config must be an object with 'mcpServers'")
    return [parse_server(str(name), raw) for name, raw in data["mcpServers"].items()]


def load_config(path: str | Path) -> list[ServerConfig]:
    """The servers of the file at `path`. Raises McpConfigError (unreadable, not JSON, bad)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise McpConfigError(f"cannot read the MCP config {path}: {error}") from error
    return parse_config(data)

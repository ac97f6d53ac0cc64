"""Chatdown's header lines and the values of its commands, read. A bad command value raises
ValueError saying what to write instead (the parser adds the file and line); a bad header line
raises ScriptError."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bot.scripted.errors import ScriptError
from bot.tools.config import McpConfigError, load_config

DEFAULT_CHANNEL = "test"
_HEADER = re.compile(r"^(bot|user|users|channelId|mcp)=(.*)$")
_TOOL = re.compile(r"[^/\s]+/[^/\s]+")


@dataclass
class Header:
    """`user=Joe`, `users=Joe,Sue`, `bot=LulaBot`, `channelId=msteams`, `mcp=servers.json`."""

    users: list[str] = field(default_factory=list)
    bot: str | None = None
    channel: str = DEFAULT_CHANNEL
    mcp: Path | None = None  # resolved against the script's folder
    end: int = 0  # the index of the body's first line


def read_header(path: Path, lines: list[str]) -> Header:
    """The header lines at the top of `lines` (blank lines may separate them)."""
    header = Header()
    while header.end < len(lines):
        match = _HEADER.match(lines[header.end].strip())
        if match is None and lines[header.end].strip():
            break
        header.end += 1
        if match is None:
            continue
        option, value = match.group(1), match.group(2).strip()
        if not value or "=" in value:
            raise ScriptError(path, header.end, f"malformed header: write {option}=<value>")
        if option in ("user", "users"):
            header.users += [name.strip() for name in value.split(",")]
        elif option == "bot":
            header.bot = value
        elif option == "mcp":
            header.mcp = _mcp_config(path, header.end, value)
        else:
            header.channel = value
    return header


def _mcp_config(script: Path, line: int, value: str) -> Path:
    """`mcp=PATH`: an mcpServers file, relative to the script's folder."""
    path = (script.parent / value).resolve()
    try:
        load_config(path)
    except McpConfigError as error:
        raise ScriptError(script, line, str(error)) from None
    return path


def delay_ms(value: str | None) -> int:
    """`[Delay=500]`: milliseconds."""
    if not (value or "").isdigit():
        raise ValueError("write [Delay=<milliseconds>], e.g. [Delay=500]")
    return int(value or "")


def layout(value: str | None) -> str:
    """`[AttachmentLayout=carousel]` or `list`."""
    if (value or "").lower() not in ("carousel", "list"):
        raise ValueError("[AttachmentLayout=…] is carousel or list")
    return (value or "").lower()


def press_title(value: str | None) -> str:
    """`[Press=Approve]`: the button's title."""
    if not value:
        raise ValueError("write [Press=<button title>]")
    return value


def invoke_status(value: str | None) -> int:
    """`[InvokeResponse=200]`: the status."""
    if not (value or "").isdigit():
        raise ValueError("write [InvokeResponse=<status>], e.g. [InvokeResponse=200]")
    return int(value or "")


def tool_calls(value: str | None) -> tuple[str, ...]:
    """`[ToolCalls=shop/lookup_order, shop/cancel_order]`, or `[ToolCalls=]` for none."""
    tools = tuple(t.strip() for t in (value or "").split(",") if t.strip())
    if not all(_TOOL.fullmatch(t) for t in tools):
        raise ValueError("write [ToolCalls=server/tool, server/tool] (or [ToolCalls=] for none)")
    return tools


def members(value: str | None) -> tuple[list[str], list[str]]:
    """`[ConversationUpdate=MembersAdded=Joe,Sue]`, `MembersRemoved=…` on a line of its own: the
    names added and removed."""
    added: list[str] = []
    removed: list[str] = []
    for part in (value or "").split("\n"):
        key, _, names = part.partition("=")
        key = key.strip().lower()
        listed = [n.strip() for n in names.split(",") if n.strip()]
        if key in ("membersadded", "added") and listed:
            added += listed
        elif key in ("membersremoved", "removed") and listed:
            removed += listed
        elif key or names.strip():
            raise ValueError("write [ConversationUpdate=MembersAdded=a,b] (or MembersRemoved=…)")
    if not added and not removed:
        raise ValueError("[ConversationUpdate=…] adds or removes no one")
    return added, removed

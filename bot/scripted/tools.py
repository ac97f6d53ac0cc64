"""A script's MCP servers (`mcp=PATH`) and the tool calls its bot ran (`[ToolCalls=…]`).

The mcpServers file is the one any MCP host reads, adapted for the run in a temporary folder: a
stdio server's `command` written `python` (or `python3`) runs with the interpreter that runs the
scripts (`sys.executable`: the virtualenv's, whatever PATH says), and a stdio server starts in
the file's own folder (its `cwd`, if given, is taken relative to that folder), so relative
`args` work from any working directory. Calls go to an audit log in the same folder.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from bot.settings import Settings
from bot.tools.audit import NOT_RUN, AuditLog

PYTHON = ("python", "python3")


def script_config(path: Path) -> dict[str, Any]:
    """The mcpServers file at `path`, its stdio servers' interpreter and folder resolved."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for server in data["mcpServers"].values():
        if not server.get("command"):
            continue
        if server["command"] in PYTHON:
            server["command"] = sys.executable
        server["cwd"] = str((path.parent / server.get("cwd", ".")).resolve())
    return data


def with_tools(settings: Settings, mcp_config: Path, folder: Path) -> tuple[Settings, Path]:
    """`settings` with the servers of `mcp_config` and an audit log, both in `folder`; the
    audit log's path."""
    config, audit = folder / "mcp.json", folder / "tools-audit.jsonl"
    config.write_text(json.dumps(script_config(mcp_config)), encoding="utf-8")
    return dataclasses.replace(settings, mcp_config=str(config), tools_audit=str(audit)), audit


class ToolCalls:
    """The calls the audit log at `path` holds, handed out once each: `since_last()`."""

    def __init__(self, path: Path) -> None:
        self._audit = AuditLog(path)
        self._seen = 0

    def since_last(self) -> tuple[str, ...]:
        """`server/tool` of each call that ran since the previous call of this (rejected ones,
        never run, are left out), oldest first."""
        entries = list(self._audit.read())
        new, self._seen = entries[self._seen :], len(entries)
        return tuple(f"{e['server']}/{e['tool']}" for e in new if e.get("outcome") != NOT_RUN)

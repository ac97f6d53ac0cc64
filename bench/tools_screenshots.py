"""Screenshots of the tools in the real Web Chat UI on botloom's /chat page (headless chromium):
a read tool, an approval and a rejection, with the demo servers of examples/mcp over stdio, the
fake chat model (the reply from a tool result is the grounding guard's quote of it) and the
real router (all-MiniLM-L6-v2, SmolLM2 under llguidance).

    .venv/bin/python bench/tools_screenshots.py   # → bench/results/screenshots/tools-*.png
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from aiohttp.test_utils import TestServer

from bot.app import RUNTIME, create_app
from bot.settings import Settings
from models.fake import FakeChatModel

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench/results/screenshots"


async def main() -> None:
    folder = Path(tempfile.mkdtemp())
    servers = {
        name: {"command": sys.executable, "args": [str(ROOT / "examples/mcp/servers.py"), name]}
        for name in ("shop", "helpdesk", "office")
    }
    (folder / "mcp.json").write_text(json.dumps({"mcpServers": servers}))
    settings = Settings(
        storage=f"sqlite:///{folder}/state.db",
        mcp_config=str(folder / "mcp.json"),
        tools_audit=str(folder / "audit.jsonl"),
        tool_turn_timeout_s=300.0,  # the shared machine is slow
    )
    server = TestServer(create_app(settings, model=FakeChatModel()), host="127.0.0.1")
    await server.start_server()
    try:
        tools = server.app[RUNTIME].tools
        await tools.servers.wait_tried(60)
        if tools.warming is not None:
            await tools.warming  # the router's models loaded
        steps = [
            {"say": "Is the wifi down right now?", "waitFor": "no known outage"},
            {
                "say": "I don't want order A-20931 anymore, please cancel it",
                "waitFor": "Approve this action?",
            },
            {"click": "Approve", "waitFor": "is cancelled"},
            {"say": "mark ticket INC-4711 as resolved", "waitFor": "Close a ticket as resolved"},
            {"click": "Reject", "waitFor": "did not run close_ticket"},
        ]
        OUT.mkdir(parents=True, exist_ok=True)
        config = {"url": str(server.make_url("/chat")), "steps": steps, "dir": str(OUT)}
        process = await asyncio.create_subprocess_exec(
            "node",
            str(ROOT / "bench/tools_screenshots.mjs"),
            json.dumps(config),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await process.communicate()
        print(stdout.decode().strip().splitlines()[-1] if stdout else "no output")
        audit = (folder / "audit.jsonl").read_text() if (folder / "audit.jsonl").exists() else ""
        print(audit)
    finally:
        await server.close()


if __name__ == "__main__":
    asyncio.run(main())

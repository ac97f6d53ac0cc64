"""MCP servers through the runner: stdio and HTTP, a server down at start, one that dies
mid-call (and is restarted), the time limit per call, and the audit line of each call; closing
ends a connection even when its transport wraps the cancellation in a group."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.tools.config import parse_server
from bot.tools.servers import ServerConnection
from tests.services import closed_port
from tests.tools.support import SERVER, make_runner, stdio_config


async def wait_up(runner, name: str, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s * 10)):
        if runner.servers.connections[name].up:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never came up: {runner.servers.down()}")


async def test_stdio_tools_run_and_are_audited(tmp_path: Path) -> None:
    runner = make_runner([stdio_config(tmp_path / "notes")], tmp_path / "audit.jsonl")
    runner.servers.start()
    try:
        await wait_up(runner, "test")
        names = {t.name: t.rule for t in runner.tools()}
        assert names["echo"] == "auto" and names["note"] == "ask"
        outcome = await runner.execute("c1", "u1", "test", "echo", {"text": "hi"}, "not needed")
        assert outcome.ok and outcome.text == "echo: hi"
    finally:
        await runner.servers.close()
    [entry] = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert entry["tool"] == "echo" and entry["outcome"] == "ok" and entry["user"] == "u1"
    assert entry["arguments"] == {"text": "hi"} and entry["duration_ms"] >= 0


async def test_a_server_down_at_start_does_not_stop_the_others(tmp_path: Path) -> None:
    gone = parse_server("gone", {"command": str(tmp_path / "no-such-server")})
    http_gone = parse_server("far", {"url": f"http://127.0.0.1:{closed_port()}/mcp"})
    runner = make_runner([gone, http_gone, stdio_config(tmp_path / "n")], tmp_path / "a.jsonl")
    runner.servers.start()
    try:
        await wait_up(runner, "test")
        await runner.servers.wait_tried(10)
        assert runner.down() == ["far", "gone"]
        assert {t.server for t in runner.tools()} == {"test"}
        outcome = await runner.execute("c", "u", "gone", "anything", {}, "not needed")
        assert outcome.status == "unavailable"
    finally:
        await runner.servers.close()


async def test_a_server_that_dies_mid_call_is_restarted(tmp_path: Path) -> None:
    runner = make_runner([stdio_config(tmp_path / "n")], tmp_path / "a.jsonl")
    runner.servers.start()
    try:
        await wait_up(runner, "test")
        crashed = await runner.execute("c", "u", "test", "crash", {}, "not needed")
        assert crashed.status in ("unavailable", "error")
        await wait_up(runner, "test")  # started again
        again = await runner.execute("c", "u", "test", "echo", {"text": "back"}, "not needed")
        assert again.ok and again.text == "echo: back"
    finally:
        await runner.servers.close()


async def test_a_call_past_its_time_limit_times_out(tmp_path: Path) -> None:
    runner = make_runner([stdio_config(tmp_path / "n", timeout_s=0.5)], tmp_path / "a.jsonl")
    runner.servers.start()
    try:
        await wait_up(runner, "test")
        outcome = await runner.execute("c", "u", "test", "slow", {"seconds": 5}, "not needed")
        assert outcome.status == "timeout"
    finally:
        await runner.servers.close()


@pytest.fixture
def http_server(tmp_path: Path):
    port = closed_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--http", str(port)],
        env={"NOTES_FILE": str(tmp_path / "notes"), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield port
    process.terminate()
    process.wait(10)


async def test_streamable_http_server(tmp_path: Path, http_server: int) -> None:
    config = parse_server(
        "web", {"url": f"http://127.0.0.1:{http_server}/mcp", "headers": {"X-Token": "t0ken"}}
    )
    runner = make_runner([config], tmp_path / "a.jsonl")
    runner.servers.start()
    try:
        await wait_up(runner, "web")
        outcome = await runner.execute("c", "u", "web", "echo", {"text": "over http"}, "n/a")
        assert outcome.ok and outcome.text == "echo: over http"
    finally:
        await runner.servers.close()


class _Session:
    """The two requests the keeper makes of a live session."""

    async def list_tools(self) -> SimpleNamespace:
        return SimpleNamespace(tools=[])

    async def send_ping(self) -> None:
        return None


class GroupWrappingConnection(ServerConnection):
    """A transport that, as anyio's task groups in the MCP SDK do, hands a cancellation back
    wrapped in an exception group; it counts how often it was opened."""

    opened = 0

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Any]:
        self.opened += 1
        try:
            yield _Session()
        except asyncio.CancelledError as cancelled:
            raise BaseExceptionGroup("transport", [cancelled]) from None


async def test_closing_ends_a_connection_whose_transport_wraps_the_cancellation() -> None:
    connection = GroupWrappingConnection(stdio_config(Path("unused")), retry_s=0.05)
    connection.start()
    await connection.wait_tried(5)
    assert connection.up
    await asyncio.wait_for(connection.close(), 5)  # hung forever, reconnecting, before
    assert not connection.up and connection.opened == 1

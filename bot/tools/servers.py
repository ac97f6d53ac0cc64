"""The connections to the configured MCP servers, on the official `mcp` SDK's ClientSession.

Each server has a task that connects (starting a stdio server's process, or opening a Streamable
HTTP session), lists its tools and pings it; when the connection fails or the process dies, the
server is down until the task reconnects (after `retry_s`, doubling up to a minute). A server that
is down never stops the bot: its tools are simply not offered, and `down()` names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx2
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Tool

from bot.tools.config import ServerConfig

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 10.0  # how long closing a server may wait for its connection to let go


class ServerDown(Exception):
    """The server is not connected, or the connection broke during the call."""


class ServerConnection:
    """One configured server: its session while connected, and its tools."""

    def __init__(self, config: ServerConfig, *, retry_s: float = 2.0, ping_s: float = 5.0) -> None:
        self.config = config
        self.tools: list[Tool] = []
        self.error: str | None = "not connected yet"
        self._session: ClientSession | None = None
        self._retry_s = retry_s
        self._ping_s = ping_s
        self._broken = asyncio.Event()
        self._tried = asyncio.Event()  # the first connection attempt ended, either way
        self._task: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self._session is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._keep(), name=f"mcp:{self.config.name}")

    async def wait_tried(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._tried.wait(), timeout_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT_S)
            if not done:  # never wait forever on a transport that does not let go
                logger.warning("MCP server %s did not close in time", self.config.name)
            self._task = None

    async def call(self, name: str, arguments: dict[str, Any], timeout_s: float) -> CallToolResult:
        """The tool's result. Raises ServerDown, TimeoutError."""
        session = self._session
        if session is None:
            raise ServerDown(self.config.name)
        try:
            return await asyncio.wait_for(session.call_tool(name, arguments), timeout_s)
        except TimeoutError:
            raise
        except Exception as error:  # the connection broke (a stdio server that died): reconnect
            if self._session is session and not await self._alive(session):
                self._session = None  # down until the keeper has reconnected
                self._broken.set()
                raise ServerDown(f"{self.config.name}: {type(error).__name__}") from error
            raise

    async def _alive(self, session: ClientSession) -> bool:
        try:
            await asyncio.wait_for(session.send_ping(), 3.0)
        except Exception:
            return False
        return True

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[ClientSession]:
        config = self.config
        async with contextlib.AsyncExitStack() as stack:
            if config.command:
                params = StdioServerParameters(
                    command=config.command, args=list(config.args), env=config.env, cwd=config.cwd
                )
                streams = await stack.enter_async_context(stdio_client(params))
            else:
                client = await stack.enter_async_context(
                    httpx2.AsyncClient(headers=config.headers, timeout=config.timeout_s + 10)
                )
                streams = await stack.enter_async_context(
                    streamable_http_client(str(config.url), http_client=client)
                )
            session = await stack.enter_async_context(ClientSession(*streams))
            await asyncio.wait_for(session.initialize(), 20.0)
            yield session

    async def _keep(self) -> None:
        delay = self._retry_s
        while True:
            try:
                async with self._open() as session:
                    listed = await asyncio.wait_for(session.list_tools(), 20.0)
                    self.tools, self.error = list(listed.tools), None
                    self._broken.clear()
                    self._session = session
                    self._tried.set()
                    logger.info("MCP server %s up: %d tools", self.config.name, len(self.tools))
                    delay = self._retry_s
                    await self._watch(session)
            except BaseException as error:  # anyio groups wrap what the transport raised
                if _cancelled(error):  # close(): a cancellation may come wrapped in a group
                    self._session = None
                    if isinstance(error, asyncio.CancelledError):
                        raise
                    raise asyncio.CancelledError from error
                self.error = _describe(error)
                logger.warning("MCP server %s down: %s", self.config.name, self.error)
            self._session = None
            self._tried.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def _watch(self, session: ClientSession) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._broken.wait(), self._ping_s)
            if self._broken.is_set() or not await self._alive(session):
                raise ServerDown("the connection broke")


def _cancelled(error: BaseException) -> bool:
    """Whether `error` ends this task because it was cancelled: a CancelledError, or anything
    (an anyio exception group holding one) raised while a cancellation of the task is pending."""
    task = asyncio.current_task()
    return isinstance(error, asyncio.CancelledError) or bool(task and task.cancelling())


def _describe(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"[:200]


class McpServers:
    """All configured servers: started together, each on its own."""

    def __init__(self, configs: Sequence[ServerConfig], **options: float) -> None:
        self.connections = {c.name: ServerConnection(c, **options) for c in configs}

    def start(self) -> None:
        for connection in self.connections.values():
            connection.start()

    async def wait_tried(self, timeout_s: float = 20.0) -> None:
        """Until every server's first connection attempt has ended (or `timeout_s`)."""
        await asyncio.gather(*(c.wait_tried(timeout_s) for c in self.connections.values()))

    def down(self) -> dict[str, str]:
        """Name → why, for the servers that are not connected now."""
        return {n: c.error or "down" for n, c in self.connections.items() if not c.up}

    async def close(self) -> None:
        for connection in self.connections.values():
            await connection.close()

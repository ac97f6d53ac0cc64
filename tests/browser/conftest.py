"""What the browser tests need: Debian's chromium, node and npm, and the npm packages they pin
(installed here on first use: Web Chat into bot/channels/webchat, playwright-core and
offline-directline into tests/browser). Tests skip, with the reason, where chromium or node is
missing."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.app import create_app
from bot.channels.webchat.page import BUNDLE
from bot.settings import Settings
from models import ChatModel
from models.fake import FakeChatModel

HERE = Path(__file__).parent
SCREENSHOT_DIR_VARIABLE = "BOTLOOM_SCREENSHOT_DIR"  # keep the screenshots there (else a tmp dir)


@dataclass(frozen=True)
class Browser:
    chromium: str
    node: str
    screenshots: Path

    async def drive(self, config: dict[str, Any], *, timeout_s: float = 90.0) -> dict[str, Any]:
        """Run drive.mjs with `config`; its JSON result (with "error" when something failed)."""
        config = {
            "chromium": self.chromium,
            "timeoutMs": int(timeout_s * 1000) - 5000,
            **config,
        }
        process = await asyncio.create_subprocess_exec(
            self.node,
            str(HERE / "drive.mjs"),
            json.dumps(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        lines = stdout.decode().strip().splitlines()
        if process.returncode != 0 or not lines:
            raise AssertionError(
                f"drive.mjs failed ({process.returncode}): {stderr.decode()[-2000:]}"
            )
        return json.loads(lines[-1])


def _npm_ci(folder: Path, npm: str) -> None:
    """`npm ci` unless node_modules matches the lock file already."""
    installed = folder / "node_modules" / ".package-lock.json"
    if (
        installed.is_file()
        and installed.stat().st_mtime >= (folder / "package-lock.json").stat().st_mtime
    ):
        return
    subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        check=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    chromium = shutil.which("chromium")
    node, npm = shutil.which("node"), shutil.which("npm")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to drive the browser")
    _npm_ci(HERE, npm)
    if not BUNDLE.is_file():
        _npm_ci(BUNDLE.parents[2], npm)
    screenshots = Path(
        os.environ.get(SCREENSHOT_DIR_VARIABLE) or tmp_path_factory.mktemp("screenshots")
    )
    screenshots.mkdir(parents=True, exist_ok=True)
    return Browser(chromium, node, screenshots)


@pytest.fixture
def bot_model() -> ChatModel | None:
    """The model behind the bot (None: the configured default, loaded for real)."""
    return FakeChatModel(delay=0.12)


@pytest.fixture
def bot_settings(tmp_path: Path) -> Settings:
    return Settings(storage=f"sqlite:///{tmp_path}/state.db")


@pytest.fixture
async def bot_server(
    bot_settings: Settings, bot_model: ChatModel | None
) -> AsyncIterator[TestServer]:
    """botloom itself, as `botloom serve` runs it, on a free loopback port."""
    server = TestServer(create_app(bot_settings, model=bot_model), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def offline_directline(browser: Browser, bot_server: TestServer) -> AsyncIterator[str]:
    """The npm package offline-directline on loopback, with botloom as its bot; its base URL."""
    port = free_port()
    bot_url = str(bot_server.make_url("/api/messages"))
    process = await asyncio.create_subprocess_exec(
        browser.node,
        str(HERE / "offline_directline.cjs"),
        str(port),
        bot_url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(15):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()

"""Real `botloom serve` processes for tests that need several processes or signals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`python -m bot.cli <command>` on a loopback port, with the given BOTLOOM_ settings;
    `wait_ready` polls `health_path` until it answers 200."""

    def __init__(
        self,
        command: list[str],
        health_path: str,
        env: dict[str, str],
        log_path: Path,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._health_path = health_path
        self._log = log_path.open("ab")
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *command, "--port", str(self.port)],
            cwd=log_path.parent,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"process exited with {self.process.returncode}")
                try:
                    async with session.get(f"{self.url}{self._health_path}") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.url}{self._health_path} not ready")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.process.kill()

    async def wait_exit(self, timeout: float = 30.0) -> int:
        return await asyncio.wait_for(asyncio.to_thread(self.process.wait), timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


class BotProcess(ServerProcess):
    """`botloom serve`, ready when /readyz answers 200."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__(["serve"], "/readyz", env, log_path)


class ModelServerProcess(ServerProcess):
    """`botloom model-server`, ready when /health answers 200."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        super().__init__(["model-server"], "/health", env, log_path, port)

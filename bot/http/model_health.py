"""The remote model server's state, for operators: reachable, last error, latency.

A bot whose model server is down still answers (with an apology), so /readyz stays independent of
it; `ModelServerProbe` asks the server's ``GET /v1/models`` every `interval_s` instead, keeps the
outcome for /healthz's body, and logs a warning while the server is down, at most once a
`log_every_s` (and once more when it is back).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from bot.redaction import describe_error, mask_url, redact

logger = logging.getLogger(__name__)


class ModelServerProbe:
    """Probes the OpenAI-compatible server at `url` (with or without the /v1 suffix)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str = "",
        interval_s: float = 15.0,
        timeout_s: float = 5.0,
        log_every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._models_url = _models_url(url)
        self._shown_url = mask_url(url)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._log_every_s = log_every_s
        self._clock = clock
        self.reachable: bool | None = None  # None until the first probe
        self.last_error: str | None = None
        self.latency_ms: float | None = None
        self._logged_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def state(self) -> dict[str, Any]:
        """What /healthz shows: the URL without its credentials, and the last error as its class
        name and redacted message (whatever the error quoted: the URL, the key)."""
        return {
            "url": self._shown_url,
            "reachable": self.reachable,
            "last_error": self.last_error,
            "latency_ms": self.latency_ms,
        }

    async def probe(self, session: aiohttp.ClientSession) -> None:
        """One check; never raises."""
        started = self._clock()
        error = None
        try:
            timeout = aiohttp.ClientTimeout(total=self._timeout_s)
            async with session.get(
                self._models_url, headers=self._headers, timeout=timeout
            ) as response:
                await response.read()
                if response.status >= 400:
                    error = f"HTTP {response.status} from {redact(self._models_url)}"
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as failure:
            error = describe_error(failure)
        self.latency_ms = round((self._clock() - started) * 1000, 1)
        self._record(error)

    def _record(self, error: str | None) -> None:
        was_down = self.reachable is False
        self.reachable, self.last_error = error is None, error
        now = self._clock()
        if error is not None and now - self._logged_at >= self._log_every_s:
            self._logged_at = now
            logger.warning(
                "model server %s is unreachable: %s (the bot apologises on every turn)",
                self._shown_url,
                error,
            )
        elif error is None and was_down:
            self._logged_at = float("-inf")
            logger.info("model server %s is reachable again", self._shown_url)

    def start(self, session: aiohttp.ClientSession) -> None:
        """Probe every interval_s in the background, until `stop`."""

        async def run() -> None:
            while True:
                await self.probe(session)
                await asyncio.sleep(self._interval_s)

        self._task = asyncio.create_task(run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _models_url(url: str) -> str:
    """`GET /v1/models` of the server at `url`, its query (an API key, say) kept."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    path = (path if path.endswith("/v1") else path + "/v1") + "/models"
    return urlunsplit(parts._replace(path=path))

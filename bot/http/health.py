"""`/healthz` (the process is up, and the remote model server's state) and `/readyz` (model
loaded, storage reachable, not draining; independent of a remote model server)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from botbuilder.core import Storage

from bot.http.model_health import ModelServerProbe
from bot.turns.runner import TurnRunner
from models.guard import GuardedChatModel

logger = logging.getLogger(__name__)


class Health:
    """The health routes of one app, over its model, storage and turn runner."""

    def __init__(
        self,
        model: GuardedChatModel,
        storage: Storage,
        runner: TurnRunner,
        probe: ModelServerProbe | None = None,
        *,
        tools_down: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self._model = model
        self._storage = storage
        self._runner = runner
        self._probe = probe
        self._tools_down = tools_down  # MCP servers that are down: name -> why

    async def healthz(self, request: web.Request) -> web.Response:
        """200 while the process is up; with a remote model, the model server's state too
        (reachable, last_error, latency_ms: see bot/http/model_health.py)."""
        body: dict[str, object] = {"status": "ok"}
        if self._probe is not None:
            body["model_server"] = self._probe.state()
        if self._tools_down is not None:  # a tool server down never fails the check
            body["tool_servers_down"] = sorted(self._tools_down())
        return web.json_response(body)

    async def readyz(self, request: web.Request) -> web.Response:
        """200 once the model is loaded and storage answers; 503 while loading or draining."""
        if self._runner.draining:
            return web.json_response({"status": "draining"}, status=503)
        if not self._model.ready:
            return web.json_response({"status": "loading model"}, status=503)
        try:
            await self._storage.read(["botloom/readyz"])
        except Exception:
            logger.warning("storage not reachable", exc_info=True)
            return web.json_response({"status": "storage unreachable"}, status=503)
        return web.json_response({"status": "ready", "model": self._model.name})

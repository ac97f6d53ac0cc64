"""`/healthz` (the process is up) and `/readyz` (model loaded, storage reachable, not draining)."""

from __future__ import annotations

import logging

from aiohttp import web
from botbuilder.core import Storage

from bot.turns.runner import TurnRunner
from models.guard import GuardedChatModel

logger = logging.getLogger(__name__)


class Health:
    """The health routes of one app, over its model, storage and turn runner."""

    def __init__(self, model: GuardedChatModel, storage: Storage, runner: TurnRunner) -> None:
        self._model = model
        self._storage = storage
        self._runner = runner

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

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

"""`botloom serve`: run the app until SIGTERM or SIGINT, then drain gracefully."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.app import create_app, drain
from bot.settings import Settings
from models.serving.signals import stop_signal

logger = logging.getLogger(__name__)


async def run_server(settings: Settings) -> None:
    """Serve until a stop signal; then /readyz and new turns answer 503 while turns in flight
    finish (BOTLOOM_DRAIN_S), and only then does the listening socket close."""
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        url = f"http://{settings.host}:{settings.port}"
        print(f"botloom is listening on {url}/api/messages", flush=True)
        print(
            f"Bot Framework Emulator: open {url}/api/messages with an empty App ID and password.",
            flush=True,
        )
        print(f"Ready when {url}/readyz says so (the model loads first).", flush=True)
        await stop_signal()
        logger.info("stop signal received: draining")
        await drain(app)
    finally:
        await runner.cleanup()
